package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 12, File access: with io.allowed-paths set on every daemon, a job
// reading or writing outside is refused at submission naming the operator,
// the property and the path; a link inside an allowed directory that
// points out is caught by the TaskManager, whose error shows no content of
// the file; a job inside runs, and its part files are 0640.
func TestAllowedPaths(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	allowed, outside := filepath.Join(root, "allowed"), filepath.Join(root, "outside")
	in, linked := filepath.Join(allowed, "in"), filepath.Join(allowed, "linked")
	for _, d := range []string{in, linked, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(in, "f.txt"), []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("{not json: TOPSECRET}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(linked, "secret.json")); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 1, 2, "io.allowed-paths="+allowed)
	job := func(name, src, format, sink string) string {
		return c.writeJob(name, "name: "+name+"\noperators:\n"+
			"  - id: read\n    type: file-source\n    properties: {path: "+strconv.Quote(src)+", format: "+format+"}\n"+
			"  - id: write\n    type: file-sink\n    input: read\n    properties: {path: "+strconv.Quote(sink)+", format: text}\n")
	}
	suffix := " is outside io.allowed-paths (" + allowed + ")"

	c.submitRejected(job("shadow.yaml", "/etc/shadow", "text", allowed+"/out"),
		`shadow.yaml: operator "read" (file-source): property "path": path /etc/shadow`+suffix)
	c.submitRejected(job("dotdot.yaml", in, "text", allowed+"/../outside/out"),
		`dotdot.yaml: operator "write" (file-sink): property "path": path `+allowed+`/../outside/out (resolved to `+outside+`/out)`+suffix)
	c.submitRejected(job("link.yaml", in, "text", allowed+"/escape/out"),
		`link.yaml: operator "write" (file-sink): property "path": path `+allowed+`/escape/out (resolved to `+outside+`/out)`+suffix)
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("refused jobs created files in %s: %v", outside, entries)
	}
	_, stderr, code := c.weir("savepoint", "--dispose", outside)
	if want := "path " + outside + suffix; code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("dispose outside: exit %d, %q; want an error with %q", code, stderr, want)
	}

	// Submission sees only the directory; the TaskManager sees the link.
	id := strings.TrimSpace(c.mustWeir("run", "-d", job("through-link.yaml", linked, "json", allowed+"/out2")))
	st := c.waitState(id, 60*time.Second, "FAILED", "FINISHED", "CANCELED")
	want := "path " + linked + "/secret.json (resolved to " + outside + "/secret)" + suffix
	if st.State != "FAILED" || !strings.Contains(st.StatusMessage, want) || strings.Contains(st.StatusMessage, "TOPSECRET") {
		t.Errorf("job through a link: %s %q; want FAILED with %q and no content", st.State, st.StatusMessage, want)
	}

	out := filepath.Join(allowed, "out")
	id = strings.TrimSpace(c.mustWeir("run", "-d", job("ok.yaml", in, "text", out)))
	if st := c.waitState(id, 60*time.Second, "FINISHED", "FAILED", "CANCELED"); st.State != "FINISHED" {
		t.Fatalf("job inside io.allowed-paths ended %s: %s", st.State, st.StatusMessage)
	}
	fi, err := os.Stat(filepath.Join(out, "part-0-0"))
	if err != nil {
		t.Fatal(err)
	}
	if want := os.FileMode(0o640) &^ umask(t); fi.Mode() != want {
		t.Errorf("part file mode %v, want %v", fi.Mode(), want)
	}
}

// umask reads this process's umask (inherited by the daemons) without
// changing it.
func umask(t *testing.T) os.FileMode {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(rest), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return os.FileMode(m)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}
