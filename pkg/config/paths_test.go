package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIsAbsolutePathOrURI(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"/var/weir/checkpoints", true},
		{"file:///var/weir/checkpoints", true},
		{"s3://bucket/checkpoints", true},
		{"my+scheme.v2-x://x", true},
		{"checkpoints", false},
		{"./checkpoints", false},
		{"../checkpoints", false},
		{"file:checkpoints", false},
		{"2s://x", false},
		{"://x", false},
		{"a b://x", false},
		{" /var/weir", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsAbsolutePathOrURI(tt.s); got != tt.want {
			t.Errorf("IsAbsolutePathOrURI(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// TestRelativeCheckpointDirsRejected: a relative checkpoint or savepoint
// directory would be resolved against each process's own working
// directory (metadata under the JobManager's, state under each
// TaskManager's): it is refused wherever configuration is read, naming
// the key as written and the value.
func TestRelativeCheckpointDirsRejected(t *testing.T) {
	const want = "want an absolute path or a URI such as file:///var/weir/checkpoints, not a relative path, " +
		"which the JobManager and each TaskManager would resolve against its own working directory"
	for _, key := range []string{"execution.checkpointing.dir", "state.checkpoints.dir", "execution.checkpointing.savepoint-dir", "state.savepoints.dir"} {
		_, _, err := New().With(map[string]string{key: "ckpts/here"})
		if msg := `invalid value "ckpts/here" for key "` + key + `": ` + want; err == nil || err.Error() != msg {
			t.Errorf("%s: err = %v\nwant %s", key, err, msg)
		}
		for _, ok := range []string{"/var/weir/ckpts", "file:///var/weir/ckpts", "s3://bucket/ckpts"} {
			if _, _, err := New().With(map[string]string{key: ok}); err != nil {
				t.Errorf("%s: %s: %v", key, ok, err)
			}
		}
	}
	// A daemon's configuration file: the start-up fails.
	file := filepath.Join(t.TempDir(), "weir.yaml")
	if err := os.WriteFile(file, []byte("state.checkpoints.dir: ./cp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(file, nil)
	if msg := `config file "` + file + `": invalid value "./cp" for key "state.checkpoints.dir": ` + want; err == nil || err.Error() != msg {
		t.Errorf("Load: err = %v\nwant %s", err, msg)
	}
	_, _, err = Load("", []string{"execution.checkpointing.savepoint-dir=sp"})
	if msg := `-D: invalid value "sp" for key "execution.checkpointing.savepoint-dir": ` + want; err == nil || err.Error() != msg {
		t.Errorf("Load -D: err = %v\nwant %s", err, msg)
	}
}

func TestAllowedPathsValue(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"/data, /srv/weir", ""},
		{" ", ""},
		{"/data,,/tmp", `invalid value "/data,,/tmp" for key "io.allowed-paths": want comma-separated absolute directories, but entry 2 is empty`},
		{"/data, out", `invalid value "/data, out" for key "io.allowed-paths": want comma-separated absolute directories, but entry 2 ("out") is relative, which each process would resolve against its own working directory`},
	} {
		_, _, err := New().With(map[string]string{IOAllowedPaths.Key: tc.value})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.value, got, tc.want)
		}
	}
}
