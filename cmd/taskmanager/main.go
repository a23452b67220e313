// Command taskmanager runs a weir TaskManager: it registers with the
// JobManager and runs the subtasks deployed to it until SIGTERM or SIGINT.
//
//	taskmanager [--config FILE] [-D key=value]...
//
// -D may be repeated and is also accepted as -Dkey=value (Flink's form).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
	"github.com/weirstream/weir/pkg/taskmanager"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(daemon.Run(ctx, "taskmanager", os.Args[1:], os.Stderr, func(cfg *config.Config, log *zap.Logger) (func() error, error) {
		tm, err := taskmanager.New(cfg, log, taskmanager.Options{Stdout: os.Stdout})
		if err != nil {
			return nil, err
		}
		return tm.Close, nil
	}))
}
