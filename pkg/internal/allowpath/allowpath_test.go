package allowpath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// tree makes root/data (allowed), root/database, root/outside and links
// inside data pointing out, and returns root resolved (t.TempDir may be
// under a link itself).
func tree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"data/sub", "database", "outside"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"data/escape":   filepath.Join(root, "outside"), // absolute, out
		"data/relout":   "../outside",                   // relative, out
		"data/inside":   "sub",                          // relative, in
		"data/loop":     "loop",
		"alias-of-data": "data", // an allowed directory reached through a link
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCheck(t *testing.T) {
	root := tree(t)
	c, err := Parse(" " + root + "/data , /nonexistent-weir-dir")
	if err != nil {
		t.Fatal(err)
	}
	allowed := root + "/data, /nonexistent-weir-dir"
	for _, tc := range []struct {
		path string
		want string // "" = allowed
	}{
		{root + "/data", ""},
		{root + "/data/", ""},
		{root + "/data/sub/file", ""},
		{root + "/data/new/dirs/to/create", ""},
		{root + "/data/inside/x", ""},
		{root + "/alias-of-data/x", ""},
		{root + "/data/./sub/../x", ""},
		{"/nonexistent-weir-dir/a/b", ""},
		{root + "/database/x", "path " + root + "/database/x is outside io.allowed-paths (" + allowed + ")"},
		{root + "/dat", "path " + root + "/dat is outside io.allowed-paths (" + allowed + ")"},
		{root + "/data/../outside/x", "path " + root + "/data/../outside/x (resolved to " + root + "/outside/x) is outside io.allowed-paths (" + allowed + ")"},
		{root + "/data/new/../../outside", "path " + root + "/data/new/../../outside (resolved to " + root + "/outside) is outside io.allowed-paths (" + allowed + ")"},
		{root + "/data/escape/x", "path " + root + "/data/escape/x (resolved to " + root + "/outside/x) is outside io.allowed-paths (" + allowed + ")"},
		{root + "/data/relout/new/file", "path " + root + "/data/relout/new/file (resolved to " + root + "/outside/new/file) is outside io.allowed-paths (" + allowed + ")"},
		// ".." after a link applies to the link's target, as in the kernel.
		{root + "/data/escape/../x", "path " + root + "/data/escape/../x (resolved to " + root + "/x) is outside io.allowed-paths (" + allowed + ")"},
		{"/etc/shadow", "path /etc/shadow is outside io.allowed-paths (" + allowed + ")"},
		{root + "/data/loop/x", "path " + root + "/data/loop/x: more than 40 symbolic links (checking io.allowed-paths)"},
	} {
		err := c.Check(tc.path)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Check(%q)\n got: %s\nwant: %s", tc.path, got, tc.want)
		}
	}
	var d *DeniedError
	if err := c.Check("/etc"); !errors.As(err, &d) || d.Path != "/etc" || d.Resolved != "/etc" {
		t.Errorf("Check(/etc) = %#v, want a *DeniedError", err)
	}
}

func TestCheckPointer(t *testing.T) {
	root := tree(t)
	c, err := Parse(root + "/data")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pointer string
		want    string
	}{
		{"file://" + root + "/data/chk", ""},
		{root + "/data/chk", ""},
		{"s3://bucket/anything/../x", ""},
		{"jobmanager://", ""},
		{"file://" + root + "/outside", "path file://" + root + "/outside is outside io.allowed-paths (" + root + "/data)"},
		{"file:///etc", "path file:///etc is outside io.allowed-paths (" + root + "/data)"},
	} {
		err := c.CheckPointer(tc.pointer)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckPointer(%q)\n got: %s\nwant: %s", tc.pointer, got, tc.want)
		}
	}
}

func TestRootAllowsAll(t *testing.T) {
	c, err := Parse("/")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check("/etc/shadow"); err != nil {
		t.Error(err)
	}
}

func TestNilAllowsAll(t *testing.T) {
	c, err := Parse("  ")
	if err != nil || c != nil {
		t.Fatalf("Parse(blank) = %v, %v; want nil, nil", c, err)
	}
	if err := c.Check("/etc/shadow"); err != nil {
		t.Error(err)
	}
	if err := c.CheckPointer("file:///etc"); err != nil {
		t.Error(err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"/data,,/tmp", `io.allowed-paths: entry 2 is empty (in "/data,,/tmp"): remove the extra comma`},
		{"/data,", `io.allowed-paths: entry 2 is empty (in "/data,"): remove the extra comma`},
		{"/data, data/out", `io.allowed-paths: entry "data/out" is not an absolute directory: each process would resolve it against its own working directory`},
		{"./x", `io.allowed-paths: entry "./x" is not an absolute directory: each process would resolve it against its own working directory`},
		{"/a\x00b", `io.allowed-paths: entry 1 has a NUL byte`},
	} {
		_, err := Parse(tc.value)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %s", tc.value, err, tc.want)
		}
	}
}

func TestResolveRelative(t *testing.T) {
	root := tree(t)
	t.Chdir(root + "/data")
	got, err := Resolve("escape/../sub/x")
	if err != nil {
		t.Fatal(err)
	}
	if want := root + "/sub/x"; got != want {
		t.Errorf("Resolve = %s, want %s", got, want)
	}
}
