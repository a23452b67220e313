// Command taskmanager runs a weir TaskManager: it registers with the
// JobManager and runs the subtasks deployed to it until SIGTERM or SIGINT.
//
//	taskmanager [--config FILE] [-D key=value]...
//
// -D may be repeated and is also accepted as -Dkey=value (Flink's form).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/logging"
	"github.com/weirstream/weir/pkg/taskmanager"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("taskmanager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration `file`")
	var overrides []string
	fs.Func("D", "override a configuration key: -D `key=value` (repeatable)", func(s string) error {
		overrides = append(overrides, s)
		return nil
	})
	if err := fs.Parse(splitD(args)); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "taskmanager: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, warnings, err := config.Load(*configFile, overrides)
	if err != nil {
		fmt.Fprintf(stderr, "taskmanager: %v\n", err)
		return 1
	}
	log, err := logging.New(cfg.String(config.LogFormat), cfg.String(config.LogLevel), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "taskmanager: %v\n", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	for _, w := range warnings {
		log.Warn(w)
	}
	tm, err := taskmanager.New(cfg, log, taskmanager.Options{Stdout: stdout})
	if err != nil {
		log.Error("cannot start the TaskManager", zap.Error(err))
		return 1
	}
	<-ctx.Done()
	_ = tm.Close()
	return 0
}

// splitD turns Flink's -Dkey=value into -D key=value for package flag.
func splitD(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if strings.HasPrefix(a, "-D") && len(a) > 2 && a[2] != '=' {
			out = append(out, "-D", a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}
