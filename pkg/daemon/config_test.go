package daemon

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/config"
)

// withDiscovery makes Run find config files with the given environment and
// existing files instead of the machine's.
func withDiscovery(t *testing.T, env string, files ...string) {
	t.Helper()
	old := findConfigFile
	t.Cleanup(func() { findConfigFile = old })
	findConfigFile = func(flag string) (string, string, error) {
		return config.ConfigFile(flag, func(k string) string {
			if k == config.ConfDirEnv {
				return env
			}
			return ""
		}, func(p string) bool {
			for _, f := range files {
				if f == p {
					return true
				}
			}
			return false
		})
	}
}

// Run reads the file discovery picks, applies -D on top, and logs which file
// it read; a missing file that was asked for stops the daemon naming it.
func TestRunConfigDiscovery(t *testing.T) {
	dir := t.TempDir()
	flagFile := filepath.Join(dir, "flag.yaml")
	envFile := filepath.Join(dir, "config.yaml")
	for f, slots := range map[string]string{flagFile: "2", envFile: "3"} {
		if err := os.WriteFile(f, []byte("taskmanager.numberOfTaskSlots: "+slots+"\nheartbeat.interval: 7 s\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name      string
		args      []string
		env       string
		files     []string
		code      int
		slots     int
		heartbeat string
		stderr    string
	}{
		{"--config wins over WEIR_CONF_DIR", []string{"--config", flagFile}, dir, []string{flagFile, envFile}, 0, 2, "7 s",
			`"msg":"configuration file read","file":"` + flagFile + `","found_by":"--config"`},
		{"WEIR_CONF_DIR", nil, dir, []string{flagFile, envFile}, 0, 3, "7 s",
			`"msg":"configuration file read","file":"` + envFile + `","found_by":"$WEIR_CONF_DIR"`},
		{"-D over the file", []string{"-Dtaskmanager.numberOfTaskSlots=5"}, dir, []string{envFile}, 0, 5, "7 s", `"found_by":"$WEIR_CONF_DIR"`},
		{"no file: defaults", nil, "", nil, 0, 1, "",
			`"msg":"no configuration file (no --config, $WEIR_CONF_DIR unset, no /etc/weir/config.yaml): using the defaults"`},
		{"missing --config", []string{"--config", filepath.Join(dir, "nope.yaml")}, "", nil, 1, 0, "",
			`testd: config file "` + filepath.Join(dir, "nope.yaml") + `" (--config) does not exist or is not a regular file`},
		{"WEIR_CONF_DIR without config.yaml", nil, "/nowhere", nil, 1, 0, "",
			`testd: config file "/nowhere/config.yaml" (WEIR_CONF_DIR="/nowhere") does not exist or is not a regular file`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withDiscovery(t, tc.env, tc.files...)
			signals := make(chan os.Signal, 1)
			signals <- syscall.SIGTERM
			var stderr bytes.Buffer
			slots, heartbeat := 0, ""
			code := Run(signals, "testd", append([]string{"-Dlog.format=json"}, tc.args...), &stderr, func(cfg *config.Config, _ *zap.Logger) (func(context.Context) error, error) {
				slots = cfg.Int(config.TaskManagerNumberOfTaskSlots)
				heartbeat, _ = cfg.Get(config.HeartbeatInterval.Key)
				return func(context.Context) error { return nil }, nil
			})
			out := stderr.String()
			if code != tc.code || slots != tc.slots || heartbeat != tc.heartbeat || !strings.Contains(out, tc.stderr) {
				t.Errorf("code %d slots %d heartbeat %q stderr:\n%s\nwant code %d slots %d heartbeat %q stderr containing %s",
					code, slots, heartbeat, stderr.String(), tc.code, tc.slots, tc.heartbeat, tc.stderr)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	cases := []struct {
		name string
		set  map[string]string
		cur  int64 // the limit in force before
		want int64 // -1: not set
		log  string
	}{
		{"process size", map[string]string{"taskmanager.memory.process.size": "1728m"}, math.MaxInt64, 1728 << 20,
			"memory limit (Go's soft memory limit) set to taskmanager.memory.process.size"},
		{"unset, no GOMEMLIMIT", nil, math.MaxInt64, -1, "no memory limit: taskmanager.memory.process.size is unset"},
		{"unset, GOMEMLIMIT", nil, 1 << 30, -1, "memory limit from GOMEMLIMIT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := config.FromMap(tc.set)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.InfoLevel)
			got := int64(-1)
			setMemoryLimit(cfg, config.TaskManagerProcessSize, zap.New(core), func(n int64) int64 {
				if n >= 0 {
					got = n
				}
				return tc.cur
			})
			if got != tc.want || logs.Len() != 1 || logs.All()[0].Message != tc.log {
				t.Errorf("limit %d, logs %v; want %d and %q", got, logs.All(), tc.want, tc.log)
			}
		})
	}
}
