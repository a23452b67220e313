// Package daemon is what the jobmanager and taskmanager commands share: the
// command line (--config FILE, -D key=value, also Flink's -Dkey=value), the
// configuration, the logger, and a life that ends on SIGTERM or SIGINT.
//
// It owns no goroutine of its own: Run blocks until ctx ends, then closes
// what start returned.
package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/logging"
)

// Start starts a daemon from its configuration and returns what stops it.
type Start func(cfg *config.Config, log *zap.Logger) (stop func() error, err error)

// Run parses args, loads the configuration, builds the logger, starts the
// daemon and runs it until ctx ends. It returns the process exit code: 2 for
// bad arguments, 1 for a bad configuration (the message names the key) or a
// failed start.
func Run(ctx context.Context, name string, args []string, stderr io.Writer, start Start) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
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
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	cfg, warnings, err := config.Load(*configFile, overrides)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	log, err := logging.New(cfg.String(config.LogFormat), cfg.String(config.LogLevel), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	for _, w := range warnings {
		log.Warn(w)
	}
	stop, err := start(cfg, log)
	if err != nil {
		log.Error("cannot start the "+name, zap.Error(err))
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := stop(); err != nil {
		log.Warn("shutdown", zap.Error(err))
	}
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
