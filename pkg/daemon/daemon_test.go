package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
)

func TestSplitD(t *testing.T) {
	got := splitD([]string{"-Dheartbeat.interval=1s", "-D", "a=b", "--config", "f", "--", "-Dx=y"})
	want := []string{"-D", "heartbeat.interval=1s", "-D", "a=b", "--config", "f", "--", "-Dx=y"}
	if !slices.Equal(got, want) {
		t.Errorf("splitD = %q, want %q", got, want)
	}
}

func TestRun(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		startErr error
		code     int
		stderr   string
		started  bool
	}{
		{"ok", []string{"-Dtaskmanager.numberOfTaskSlots=3"}, nil, 0, "", true},
		{"bad value names the key", []string{"-D", "heartbeat.interval=soon"}, nil, 1, `"heartbeat.interval"`, false},
		{"unexpected argument", []string{"extra"}, nil, 2, `unexpected argument "extra"`, false},
		{"unknown flag", []string{"--nope"}, nil, 2, "flag provided but not defined", false},
		{"start fails", nil, errors.New("port taken"), 1, "port taken", true},
		{"TLS without io.allowed-paths warns", []string{"-Dtaskmanager.numberOfTaskSlots=3", "-Dsecurity.ssl.api.enabled=true"}, nil, 0,
			"security.ssl.api.enabled is true but io.allowed-paths is empty: a job submitter can read and write every file this daemon can", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withDiscovery(t, "")
			signals := make(chan os.Signal, 1)
			signals <- syscall.SIGTERM // run until "signalled" at once
			var stderr bytes.Buffer
			started, stopped := false, false
			code := Run(signals, "testd", tc.args, &stderr, func(cfg *config.Config, _ *zap.Logger) (func(context.Context) error, error) {
				started = true
				if tc.startErr == nil && cfg.Int(config.TaskManagerNumberOfTaskSlots) != 3 {
					t.Errorf("-D override not applied")
				}
				return func(context.Context) error { stopped = true; return nil }, tc.startErr
			})
			if code != tc.code || started != tc.started || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("code %d started %v stderr %q; want code %d started %v stderr containing %q",
					code, started, stderr.String(), tc.code, tc.started, tc.stderr)
			}
			if tc.code == 0 && !stopped {
				t.Errorf("daemon not stopped")
			}
		})
	}
}
