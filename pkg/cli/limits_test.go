package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

// The job file is read up to the limit and no further, and only from a
// regular file; anything else fails before a call, naming the file.
func TestRunJobFileLimits(t *testing.T) {
	f := &fakeJobService{submit: submitAs("7f3c2a1e")}
	addr := serve(t, f)
	dir := t.TempDir()
	write := func(name string, size int) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.Repeat([]byte("#"), size), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	atLimit := write("at-limit.yaml", config.MaxJobFileSize)
	weir(t, addr, "run", "-d", atLimit).check(t, "7f3c2a1e\n", "", 0)
	checkRequests(t, f, []proto.Message{&weirpb.SubmitJobRequest{JobSpec: bytes.Repeat([]byte("#"), config.MaxJobFileSize), FileName: atLimit}})

	over := write("over.yaml", config.MaxJobFileSize+1)
	weir(t, addr, "run", "-d", over).check(t, "",
		"weir: job file "+over+" is 1.0 MiB (1048577 bytes): the limit is 1.0 MiB (1048576 bytes)\n", 1)
	big := write("big.yaml", 10<<20)
	weir(t, addr, "run", big).check(t, "",
		"weir: job file "+big+" is 10.0 MiB (10485760 bytes): the limit is 1.0 MiB (1048576 bytes)\n", 1)

	// /dev/zero would never end; a named pipe would block the open until
	// someone writes to it.
	weir(t, addr, "run", "-d", "/dev/zero").check(t, "",
		"weir: job file /dev/zero is a character device: want a regular file\n", 1)
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	weir(t, addr, "run", "-d", fifo).check(t, "",
		"weir: job file "+fifo+" is a named pipe: want a regular file\n", 1)
	// A symbolic link to a regular file is read through.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(atLimit, link); err != nil {
		t.Fatal(err)
	}
	weir(t, addr, "run", "-d", link).check(t, "7f3c2a1e\n", "", 0)
	if n := len(f.received()); n != 2 {
		t.Fatalf("%d requests sent; want only the two within the limit", n)
	}
}

// --allow-non-restored-state only means something with a savepoint: alone,
// it is a usage error rather than silently ignored.
func TestRunAllowNonRestoredNeedsSavepoint(t *testing.T) {
	addr := closedAddr(t)
	path := writeJobFile(t)
	for _, args := range [][]string{{"run", "-n", path}, {"run", "-d", "--allow-non-restored-state", path}} {
		r := weir(t, addr, args...)
		want := "weir: --allow-non-restored-state (-n) needs --from-savepoint (-s)\nUsage:\n  weir run [-d] [-s PATH [-n]] [-p N] [-D key=value]... JOBFILE [flags]\n"
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("weir %v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr starting with:\n%s", args, r.code, r.stdout, r.stderr, want)
		}
	}
}

// A timeout that is not positive is a usage error, not a connection that
// "cannot be reached".
func TestTimeoutMustBePositive(t *testing.T) {
	addr := closedAddr(t)
	for _, tc := range []struct{ value, want string }{
		{"0", `weir: invalid argument "0" for "--timeout" flag: must be positive, is 0s`},
		{"-5s", `weir: invalid argument "-5s" for "--timeout" flag: must be positive, is -5s`},
		{"soon", `weir: invalid argument "soon" for "--timeout" flag: want a duration such as 30s or 2m`},
	} {
		r := weir(t, addr, "--timeout", tc.value, "list")
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.want+"\nUsage:\n") {
			t.Errorf("--timeout %s: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr starting with:\n%s", tc.value, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

// completion writes a script for the four shells cobra supports and
// refuses any other, naming them.
func TestCompletion(t *testing.T) {
	for shell, start := range map[string]string{
		"bash": "# bash completion V2 for weir", "zsh": "#compdef weir", "fish": "# fish completion for weir", "powershell": "# powershell completion for weir",
	} {
		r := weir(t, "", "completion", shell)
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, start) {
			t.Errorf("completion %s: exit %d, stderr %q, stdout starts %.40q", shell, r.code, r.stderr, r.stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "tcsh"}, `weir: unknown shell "tcsh": want bash, zsh, fish or powershell`},
		{[]string{"completion"}, "weir: want one shell: bash, zsh, fish or powershell"},
		{[]string{"completion", "bash", "zsh"}, "weir: want one shell: bash, zsh, fish or powershell"},
	} {
		r := weir(t, "", tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.want+"\nUsage:\n  weir completion bash|zsh|fish|powershell") {
			t.Errorf("weir %v: exit %d, stdout %q, stderr:\n%s", tc.args, r.code, r.stdout, r.stderr)
		}
	}
}
