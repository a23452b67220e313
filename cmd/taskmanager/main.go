// Command taskmanager runs a weir TaskManager: it registers with the
// JobManager and runs the subtasks deployed to it until SIGTERM or SIGINT.
//
//	taskmanager [--config FILE] [-D key=value]...
//
// -D may be repeated and is also accepted as -Dkey=value (Flink's form).
// On SIGTERM it cancels its tasks and exits within
// cluster.services.shutdown-timeout (package daemon). It exits 70 when a
// canceled task does not stop within task.cancellation.timeout (package
// taskmanager): run it under a service manager that restarts it.
package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
	"github.com/weirstream/weir/pkg/snapshot/s3"
	"github.com/weirstream/weir/pkg/taskmanager"
)

func main() {
	daemon.Main("taskmanager", func(cfg *config.Config, log *zap.Logger) (func(context.Context) error, error) {
		// Checkpoint storage drivers beyond the built-in file and
		// jobmanager, configured by this daemon's own s3.* keys.
		if err := s3.Register(cfg); err != nil {
			return nil, err
		}
		tm, err := taskmanager.New(cfg, log, taskmanager.Options{Stdout: os.Stdout})
		if err != nil {
			return nil, err
		}
		return tm.Shutdown, nil
	})
}
