package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A cluster started from a Flink distribution's own config.yaml, found
// through WEIR_CONF_DIR (with -D flags on top), runs a job whose config:
// sets parallelism.default and misspells a key: weir run prints the warning
// with the closest key, and the job runs at the parallelism its config: says.
func TestFlinkConfigCluster(t *testing.T) {
	conf := t.TempDir()
	data, err := os.ReadFile("../../pkg/config/testdata/flink-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "config.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WEIR_CONF_DIR", conf) // the daemons and weir inherit it
	cp := t.TempDir()
	// -D on top of the file: a sink finishes after a final checkpoint, which
	// must not wait for the file's interval of 3 min.
	c := newCluster(t, 2, 1, "execution.checkpointing.dir="+cp, "execution.checkpointing.savepoint-dir="+cp, "execution.checkpointing.interval=200ms")
	for _, p := range append(c.taskmanagers, c.jm) {
		log, _ := os.ReadFile(p.log)
		for _, want := range []string{"configuration file read", filepath.Join(conf, "config.yaml"), "configuration keys not applicable to weir", "memory limit"} {
			if !strings.Contains(string(log), want) {
				t.Errorf("%s log lacks %q", p.name, want)
			}
		}
		if strings.Contains(string(log), "unknown configuration key") {
			t.Errorf("%s log has an unknown key:\n%s", p.name, log)
		}
	}
	out := filepath.Join(c.dir, "out")
	job := c.writeJob("job.yaml", fmt.Sprintf(`
name: flink-config
config:
  parallelism.default: 2
  execution.checkpointing.intervall: 1 s
operators:
  - id: numbers
    type: sequence
    properties: {keys: 4, count: 100}
  - id: out
    type: file-sink
    input: numbers
    properties: {path: %q, format: json}
`, out))
	stdout, stderr, code := c.weir("run", "-d", job)
	want := `warning: ` + job + `: config: unknown configuration key "execution.checkpointing.intervall" (did you mean "execution.checkpointing.interval"?)` + "\n"
	// (weir reads the same config.yaml and says what it thinks of it first.)
	if code != 0 || strings.Count(stderr, want) != 1 || !strings.HasSuffix(stderr, want) {
		t.Fatalf("weir run: exit %d\nstderr: %q\nwant it to end with, once: %q", code, stderr, want)
	}
	st := c.waitState(strings.TrimSpace(stdout), 60*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" || st.Parallelism != 2 {
		t.Fatalf("job ended %s at parallelism %d, want FINISHED at 2: %s", st.State, st.Parallelism, st.StatusMessage)
	}
}
