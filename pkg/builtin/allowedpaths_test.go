package builtin

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/weirstream/weir/pkg/internal/allowpath"
	"github.com/weirstream/weir/pkg/operator"
)

// TestFileSinkMode: part files are created 0640 and the directory 0750
// (umask 0 to see the modes asked for).
func TestFileSinkMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "out")
	sink := newOperator(t, "file-sink", operator.Properties{"path": dir})
	if err := sink.Open(testCtx("sink", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := sink.ProcessRecord(decodeJSON(t, `{"a":1}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := sink.EndInput(&c); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{dir: os.ModeDir | 0o750, filepath.Join(dir, "part-0-0"): 0o640} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

// TestAllowedPathsAtOpen: the TaskManager's io.allowed-paths is checked
// again at Open, and for each file a file-source opens (a link inside
// the allowed directory may point out of it).
func TestAllowedPathsAtOpen(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	allowedDir, outside := filepath.Join(root, "in"), filepath.Join(root, "out")
	for _, d := range []string{allowedDir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, outside, map[string]string{"secret": "s3cr3t\n"})
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(allowedDir, "link")); err != nil {
		t.Fatal(err)
	}
	checker, err := allowpath.Parse(allowedDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx("op", 0, 1)
	ctx.AllowedPaths = checker

	sink := newOperator(t, "file-sink", operator.Properties{"path": filepath.Join(outside, "sink")})
	want := `file-sink "op": property "path": path ` + outside + `/sink is outside io.allowed-paths (` + allowedDir + `)`
	if err := sink.Open(ctx); errString(err) != want {
		t.Errorf("file-sink Open: %v\nwant %s", err, want)
	}
	if _, err := os.Stat(filepath.Join(outside, "sink")); !os.IsNotExist(err) {
		t.Errorf("the refused sink directory was created: %v", err)
	}

	src := newSource(t, "file-source", operator.Properties{"path": filepath.Join(outside, "secret")})
	want = `file-source: property "path": path ` + outside + `/secret is outside io.allowed-paths (` + allowedDir + `)`
	if err := src.Open(ctx); errString(err) != want {
		t.Errorf("file-source Open: %v\nwant %s", err, want)
	}

	src = newSource(t, "file-source", operator.Properties{"path": allowedDir})
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var c collector
	_, _, err = src.PollNext(&c)
	want = "file-source: path " + allowedDir + "/link (resolved to " + outside + "/secret) is outside io.allowed-paths (" + allowedDir + ")"
	if errString(err) != want {
		t.Errorf("file-source read through a link: %v\nwant %s", err, want)
	}
	if len(c.out) != 0 || strings.Contains(errString(err), "s3cr3t") {
		t.Errorf("records %q read from a file outside io.allowed-paths", c.out)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}
