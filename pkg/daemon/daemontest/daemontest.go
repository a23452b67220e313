// Package daemontest holds what the tests of both daemons' main packages
// share: starting a daemon's real start function through daemon.Run.
package daemontest

import (
	"bytes"
	"context"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
)

// FlinkConfigs are a Flink distribution's own configuration files, in the
// 2.x YAML form and the legacy flink-conf.yaml form, relative to a
// cmd/<daemon> directory (where go test runs a main package's tests).
var FlinkConfigs = []string{"../../pkg/config/testdata/flink-config.yaml", "../../pkg/config/testdata/flink-conf.yaml"}

// StartsFromFlinkConfigs starts the daemon name with start from each of
// FlinkConfigs, with overrides (-D key=value, such as ports that let the
// test run anywhere), and stops it as soon as it started. It checks the
// exit code, that no key was unknown, that the keys weir has no use for
// were reported in one line, that the process size became Go's memory
// limit (wantLimit bytes), and that the log has every one of wantLog.
func StartsFromFlinkConfigs(t *testing.T, name string, start daemon.Start, overrides []string, wantLimit int64, wantLog ...string) {
	t.Helper()
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, file := range FlinkConfigs {
		t.Run(file, func(t *testing.T) {
			args := []string{"--config", file}
			for _, kv := range overrides {
				args = append(args, "-D", kv)
			}
			signals := make(chan os.Signal, 1)
			var stderr bytes.Buffer
			var limit int64
			code := daemon.Run(signals, name, args, &stderr,
				func(cfg *config.Config, log *zap.Logger) (func(context.Context) error, error) {
					stop, err := start(cfg, log)
					limit = debug.SetMemoryLimit(-1)
					signals <- syscall.SIGTERM // started: stop at once
					return stop, err
				})
			out := stderr.String()
			for _, want := range append([]string{
				"configuration file read", file,
				"memory limit (Go's soft memory limit) set to " + name + ".memory.process.size",
				"configuration keys not applicable to weir, ignored: env.java.opts.all",
			}, wantLog...) {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if code != 0 || strings.Contains(out, "unknown configuration key") || limit != wantLimit {
				t.Errorf("exit code %d, memory limit %d (want 0, %d); log:\n%s", code, limit, wantLimit, out)
			}
		})
	}
}
