package main

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

// The jobmanager starts from a Flink distribution's own configuration file, in
// the 2.x YAML form and the legacy flink-conf.yaml form: no unknown key, the
// keys weir has no use for in one line, its process size as Go's memory
// limit. (The ports are overridden so that the test can run anywhere.)
func TestStartsFromFlinkConfig(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, file := range []string{"../../pkg/config/testdata/flink-config.yaml", "../../pkg/config/testdata/flink-conf.yaml"} {
		t.Run(file, func(t *testing.T) {
			signals := make(chan os.Signal, 1)
			var stderr bytes.Buffer
			var limit int64
			code := daemon.Run(signals, "jobmanager", []string{"--config", file, "-D", "jobmanager.rpc.port=0", "-D", "metrics.reporter.prom.port=0"}, &stderr,
				func(cfg *config.Config, log *zap.Logger) (func(context.Context) error, error) {
					stop, err := start(cfg, log)
					limit = debug.SetMemoryLimit(-1)
					signals <- syscall.SIGTERM // started: stop at once
					return stop, err
				})
			out := stderr.String()
			for _, want := range []string{
				"configuration file read", file,
				"memory limit (Go's soft memory limit) set to jobmanager.memory.process.size",
				"configuration keys not applicable to weir, ignored: env.java.opts.all",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if code != 0 || strings.Contains(out, "unknown configuration key") || limit != 1600<<20 {
				t.Errorf("exit code %d, memory limit %d (want 0, %d); log:\n%s", code, limit, int64(1600<<20), out)
			}
		})
	}
}
