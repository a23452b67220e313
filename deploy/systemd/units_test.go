// Package systemd holds weir's systemd units (weir-jobmanager.service,
// weir-taskmanager.service; docs/deployment.md) and their tests: no Go
// code. The tests check the directives the deployment relies on, and run
// `systemd-analyze verify` on the units where systemd is installed.
package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var units = []string{"weir-jobmanager", "weir-taskmanager"}

// directives parses a unit file into section.key -> values, in order.
func directives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: not key=value: %q", path, n, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitDirectives checks what docs/deployment.md and the daemons rely
// on: who runs them, how they stop and restart, what they may touch.
func TestUnitDirectives(t *testing.T) {
	for _, u := range units {
		t.Run(u, func(t *testing.T) {
			d := directives(t, u+".service")
			port := map[string]string{"weir-jobmanager": "9249", "weir-taskmanager": "9250"}[u]
			want := map[string]string{
				"Service.Type":                     "exec",
				"Service.User":                     "weir",
				"Service.Group":                    "weir",
				"Service.ExecStart":                "/usr/local/bin/" + u + " --config /etc/weir/config.yaml -D metrics.reporter.prom.port=" + port,
				"Service.KillSignal":               "SIGTERM", // package daemon's graceful stop
				"Service.Restart":                  "on-failure",
				"Service.RestartPreventExitStatus": "2",
				"Service.ProtectSystem":            "strict",
				"Service.ReadWritePaths":           "/var/lib/weir",
				"Service.StateDirectory":           "weir",
				"Service.NoNewPrivileges":          "yes",
				"Service.PrivateTmp":               "yes",
				"Service.ProtectHome":              "yes",
				"Service.PrivateDevices":           "yes",
				"Service.PrivateMounts":            "yes",
				"Service.CapabilityBoundingSet":    "",
				"Service.RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
				"Service.LimitNOFILE":              "65536",
				"Install.WantedBy":                 "multi-user.target",
			}
			for k, v := range want {
				if got := d[k]; !slices.Equal(got, []string{v}) {
					t.Errorf("%s: %s = %q, want exactly [%q]", u, k, got, v)
				}
			}
		})
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on each unit, as
// installed but with ExecStart pointing at a copy of an executable (verify
// checks that the binary exists), and fails on any complaint about it.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: the units are not verified on this machine")
	}
	exe, err := os.Executable() // any executable file does
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, u := range units {
		data, err := os.ReadFile(u + ".service")
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, u)
		if err := os.Symlink(exe, bin); err != nil {
			t.Fatal(err)
		}
		unit := strings.Replace(string(data), "ExecStart=/usr/local/bin/"+u+" ", "ExecStart="+bin+" ", 1)
		if unit == string(data) {
			t.Fatalf("%s.service: no ExecStart=/usr/local/bin/%s to point at the test's binary", u, u)
		}
		if err := os.WriteFile(filepath.Join(dir, u+".service"), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range units {
		path := filepath.Join(dir, u+".service")
		cmd := exec.Command(analyze, "verify", path)
		// No user manager or bus is needed: verify loads the file alone.
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
		out, err := cmd.CombinedOutput()
		var complaints []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.Contains(line, u) {
				complaints = append(complaints, line)
			} else if line != "" {
				t.Logf("systemd-analyze verify (not about %s): %s", u, line)
			}
		}
		if err != nil || len(complaints) > 0 {
			t.Errorf("systemd-analyze verify %s.service: %v\n%s", u, err, strings.Join(complaints, "\n"))
		}
		checkExposure(t, analyze, path)
	}
}

// maxExposure bounds systemd's exposure score of the units (0 is fully
// confined, 10 not at all; 1.4 when written: what is left is the network
// and the host's file system, read-only, that the daemons need).
const maxExposure = 2.0

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// checkExposure runs `systemd-analyze security --offline=true` (systemd
// 250 and later) on the unit at path and fails above maxExposure.
func checkExposure(t *testing.T, analyze, path string) {
	t.Helper()
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Logf("systemd-analyze security --offline=true not usable here (%v): exposure not checked\n%s", err, out)
		return
	}
	score, perr := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("%s: systemd's exposure level %s", filepath.Base(path), m[1])
	if perr != nil || score > maxExposure {
		t.Errorf("%s: exposure %s, want at most %.1f:\n%s", filepath.Base(path), m[1], maxExposure, out)
	}
}
