// Package testtool finds the servers the tests start (MinIO, etcd): test
// tools, not dependencies of weir, built once by .ci/tools.sh into a cache
// outside the repository and found through an environment variable or
// that cache.
package testtool

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tool is one server binary .ci/tools.sh builds.
type Tool struct {
	// Name is the binary's name, and with Version its cache directory:
	// $XDG_CACHE_HOME/weir-tools/<Name>-<Version>/<Name>.
	Name, Version string
	// Env names the environment variable that overrides the path.
	Env string
	// HowToBuild ends the error of a missing binary, after "run
	// .ci/tools.sh (it builds ": what and how long.
	HowToBuild string
}

// CachePath is where .ci/tools.sh puts the binary (~/.cache by default).
func (t Tool) CachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "cache")
	}
	return filepath.Join(dir, "weir-tools", t.Name+"-"+t.Version, t.Name)
}

// Binary returns the path of the tool: $Env if set, else CachePath. The
// error says how to build it.
func (t Tool) Binary() (string, error) {
	p := os.Getenv(t.Env)
	if p == "" {
		p = t.CachePath()
	}
	fi, err := os.Stat(p)
	if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return p, nil
	}
	return "", fmt.Errorf("no %s server at %s: run .ci/tools.sh (it builds %s into %s), or set %s to a %s %s binary",
		t.Name, p, t.HowToBuild, filepath.Dir(t.CachePath()), t.Env, t.Name, t.Version)
}

// FreePort returns a TCP port that was free on ip a moment ago. The server
// binds it a little later; another process could take it in between,
// which fails the server's start with the port named in its log.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// Tail returns about the last n bytes of a log, from a line start.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		i += j + 1
	}
	return strings.TrimSpace(s[i:])
}
