// Package daemon is what the jobmanager and taskmanager commands share: the
// command line (--config FILE, -D key=value, also Flink's -Dkey=value), the
// configuration, the logger, the memory limit, and a life that ends on
// SIGTERM or SIGINT.
//
// The configuration file is found as Flink finds FLINK_CONF_DIR's
// (config.ConfigFile): --config FILE, else $WEIR_CONF_DIR/config.yaml, else
// /etc/weir/config.yaml if it exists, else none (the defaults); -D flags
// apply on top. The daemon logs which file it read, or that it read none.
//
// Shutdown is bounded: the first signal stops the daemon, which has
// cluster.services.shutdown-timeout (10 s; below systemd's default
// TimeoutStopSec of 90 s) to cancel its tasks and stop its services; the
// process exits 1 if it did not stop by then (plus stopGrace for a stop
// that overruns its context), and at once on a second signal. A stuck task
// therefore never keeps a daemon from exiting.
//
// It owns no goroutine that outlives Run, except a stop that overran the
// bound, which the process exit ends.
package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/logging"
)

// Start starts a daemon from its configuration and returns what stops it.
// stop's context ends at the shutdown bound: stop should give up waiting
// then (and say what it gave up on in its error).
type Start func(cfg *config.Config, log *zap.Logger) (stop func(ctx context.Context) error, err error)

// stopGrace is how long Run still waits, after the shutdown bound, for a
// stop that overruns its context, so that what it logs is not cut short.
const stopGrace = time.Second

// Main runs a daemon command: Run with os.Args until SIGTERM or SIGINT,
// then exits the process with Run's code.
func Main(name string, start Start) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(Run(signals, name, os.Args[1:], os.Stderr, start))
}

// Run parses args, loads the configuration, builds the logger, starts the
// daemon and runs it until a signal arrives on signals, then stops it
// within the shutdown bound. It returns the process exit code: 0 after a
// clean stop, 2 for bad arguments, 1 for a bad configuration (the message
// names the key) or a config file asked for that is missing (the message
// names it), a failed start, a failed stop, a stop that did not end
// within cluster.services.shutdown-timeout, or a second signal during the
// stop.
func Run(signals <-chan os.Signal, name string, args []string, stderr io.Writer, start Start) int {
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
	path, source, err := findConfigFile(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	cfg, warnings, err := config.Load(path, overrides)
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
	if path != "" {
		log.Info("configuration file read", zap.String("file", path), zap.String("found_by", source))
	} else {
		log.Info("no configuration file (no --config, $" + config.ConfDirEnv + " unset, no " + config.SystemConfigFile + "): " +
			"using the defaults")
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	if w := unconfinedWarning(cfg); w != "" {
		log.Warn(w)
	}
	stop, err := start(cfg, log)
	if err != nil {
		log.Error("cannot start the "+name, zap.Error(err))
		return 1
	}
	sig := <-signals
	return shutdown(log, name, sig, signals, cfg.Duration(config.ShutdownTimeout), stop)
}

// findConfigFile is config.FindConfigFile; tests replace it so that a
// /etc/weir/config.yaml or $WEIR_CONF_DIR of the machine running them does
// not change their outcome.
var findConfigFile = config.FindConfigFile

// SetMemoryLimit sets Go's soft memory limit (runtime/debug.SetMemoryLimit)
// to the daemon's process size, the option opt (jobmanager.memory.process.size
// or taskmanager.memory.process.size), when it is set, and logs the limit in
// force either way. The option wins over GOMEMLIMIT, which applies when it
// is unset. It is the whole budget: there is no JVM metaspace or overhead to
// take off it, and the TaskManager's network buffers live inside it.
func SetMemoryLimit(cfg *config.Config, opt *config.Option, log *zap.Logger) {
	setMemoryLimit(cfg, opt, log, debug.SetMemoryLimit)
}

func setMemoryLimit(cfg *config.Config, opt *config.Option, log *zap.Logger, set func(int64) int64) {
	if !cfg.IsSet(opt) {
		if cur := set(-1); cur != math.MaxInt64 {
			log.Info("memory limit from GOMEMLIMIT", zap.Int64("bytes", cur), zap.String("unset", opt.Key))
		} else {
			log.Info("no memory limit: "+opt.Key+" is unset", zap.String("unset", opt.Key))
		}
		return
	}
	limit := cfg.MemorySize(opt)
	prev := set(limit)
	fields := []zap.Field{zap.Int64("bytes", limit), zap.String(opt.Key, cfg.String(opt))}
	if os.Getenv("GOMEMLIMIT") != "" {
		fields = append(fields, zap.Int64("replaces_gomemlimit", prev))
	}
	log.Info("memory limit (Go's soft memory limit) set to "+opt.Key, fields...)
}

// shutdown runs stop, bounded by timeout (plus stopGrace) and by a second
// signal, and returns the exit code.
func shutdown(log *zap.Logger, name string, sig os.Signal, signals <-chan os.Signal, timeout time.Duration, stop func(context.Context) error) int {
	log.Info("shutting down", zap.Stringer("signal", sig), zap.Duration(config.ShutdownTimeout.Key, timeout))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- stop(ctx) }()
	hard := time.NewTimer(timeout + stopGrace)
	defer hard.Stop()
	select {
	case err := <-stopped:
		if err != nil {
			log.Error("the "+name+" did not stop cleanly; exiting", zap.Error(err))
			return 1
		}
		log.Info("stopped")
		return 0
	case <-hard.C:
		log.Error("the "+name+" did not stop within "+config.ShutdownTimeout.Key+"; exiting",
			zap.Duration(config.ShutdownTimeout.Key, timeout))
		return 1
	case s := <-signals:
		log.Warn("second signal during shutdown; exiting at once", zap.Stringer("signal", s))
		return 1
	}
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

// unconfinedWarning is the start-up warning of a cluster that secures its
// connections but lets every job submitter touch every file the daemons
// can: TLS keeps strangers out, io.allowed-paths confines those let in.
func unconfinedWarning(cfg *config.Config) string {
	if cfg.String(config.IOAllowedPaths) != "" {
		return ""
	}
	for _, o := range []*config.Option{config.SSLInternalEnabled, config.SSLAPIEnabled} {
		if cfg.Bool(o) {
			return o.Key + " is true but " + config.IOAllowedPaths.Key + " is empty: a job submitter can read and write " +
				"every file this daemon can (file-source, file-sink, checkpoint and savepoint paths); see docs/security.md"
		}
	}
	return ""
}
