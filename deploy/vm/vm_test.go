// Package vm holds the three-VM example (vm1.yaml, vm2.yaml, vm3.yaml)
// and install.sh (docs/deployment.md), and their tests: no Go code.
package vm

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/config"
)

// TestConfigsLoad loads each VM's file as the daemons do: no error, no
// warning (an unknown or misspelt key would be one), and the keys that
// make the three a cluster.
func TestConfigsLoad(t *testing.T) {
	for vm, ip := range map[string]string{"vm1": "10.0.0.11", "vm2": "10.0.0.12", "vm3": "10.0.0.13"} {
		t.Run(vm, func(t *testing.T) {
			cfg, warnings, err := config.Load(vm+".yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %q", warnings)
			}
			for o, want := range map[*config.Option]string{
				config.HighAvailabilityType:          "etcd",
				config.HighAvailabilityEtcdEndpoints: "10.0.0.11:2379,10.0.0.12:2379,10.0.0.13:2379",
				config.HighAvailabilityStorageDir:    "s3://weir/ha",
				config.CheckpointsDir:                "s3://weir/checkpoints",
				config.SavepointDir:                  "s3://weir/savepoints",
				config.S3Endpoint:                    "http://10.0.0.11:9000",
				config.TaskManagerHost:               ip,
				config.LogFormat:                     "json",
			} {
				if got := cfg.String(o); got != want {
					t.Errorf("%s = %q, want %q", o.Key, got, want)
				}
			}
			if cfg.Duration(config.CheckpointingInterval) <= 0 {
				t.Errorf("%s unset: jobs would not be checkpointed", config.CheckpointingInterval.Key)
			}
			// The JobManager VMs advertise themselves; no secret is in the file.
			if vm != "vm3" && cfg.String(config.JobManagerRPCAddress) != ip {
				t.Errorf("%s = %q, want %s", config.JobManagerRPCAddress.Key, cfg.String(config.JobManagerRPCAddress), ip)
			}
			if cfg.IsSet(config.S3SecretKey) || cfg.IsSet(config.S3AccessKey) {
				t.Errorf("the S3 credentials belong in /etc/weir/environment, not in %s.yaml", vm)
			}
		})
	}
}

// fakeBinaries writes executable stand-ins for the three binaries.
func fakeBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []string{"jobmanager", "taskmanager", "weir"} {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\necho "+b+" v1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// install runs install.sh with args (not as root: staged under a DESTDIR)
// and returns its exit code and output.
func install(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("./install.sh", args...)
	cmd.Env = append(os.Environ(), "DESTDIR=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// tree lists the files and directories under root with their modes, as
// "path mode" lines, for an exact comparison.
func tree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		lines = append(lines, fmt.Sprintf("%s %04o", "/"+rel, fi.Mode().Perm()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestInstallIntoDestdir(t *testing.T) {
	bin := fakeBinaries(t)
	root := filepath.Join(t.TempDir(), "root")
	code, out := install(t, "--bin", bin, "--config", "vm1.yaml", "--destdir", root, "--prefix", "/opt/weir")
	if code != 0 {
		t.Fatalf("install.sh exited %d:\n%s", code, out)
	}
	want := strings.Join([]string{
		"/etc 0755",
		"/etc/systemd 0755",
		"/etc/systemd/system 0755",
		"/etc/systemd/system/weir-jobmanager.service 0644",
		"/etc/systemd/system/weir-taskmanager.service 0644",
		"/etc/weir 0750",
		"/etc/weir/config.yaml 0640",
		"/opt 0755",
		"/opt/weir 0755",
		"/opt/weir/bin 0755",
		"/opt/weir/bin/weir 0755",
		"/opt/weir/bin/weir-jobmanager 0755",
		"/opt/weir/bin/weir-taskmanager 0755",
		"/var 0755",
		"/var/lib 0755",
		"/var/lib/weir 0750",
		"/var/lib/weir/data 0750",
	}, "\n")
	if got := tree(t, root); got != want {
		t.Errorf("installed:\n%s\nwant:\n%s", got, want)
	}
	// The units run the binaries of the prefix, with the configuration.
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/weir-jobmanager.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/opt/weir/bin/weir-jobmanager --config /etc/weir/config.yaml ") {
		t.Errorf("weir-jobmanager.service does not run /opt/weir/bin/weir-jobmanager:\n%s", unit)
	}
	for installed, src := range map[string]string{
		"opt/weir/bin/weir-jobmanager": filepath.Join(bin, "jobmanager"),
		"etc/weir/config.yaml":         "vm1.yaml",
	} {
		a, _ := os.ReadFile(filepath.Join(root, installed))
		b, _ := os.ReadFile(src)
		if !bytes.Equal(a, b) {
			t.Errorf("/%s differs from %s", installed, src)
		}
	}

	// Again, the same: nothing changes.
	before := tree(t, root)
	code, out = install(t, "--bin", bin, "--config", "vm1.yaml", "--destdir", root, "--prefix", "/opt/weir")
	if code != 0 || strings.Contains(out, "installed ") {
		t.Errorf("second run: exit %d, want 0 and nothing installed:\n%s", code, out)
	}
	if after := tree(t, root); after != before {
		t.Errorf("second run changed the tree:\n%s\nwas:\n%s", after, before)
	}

	// An upgrade: a new binary replaces the old; another configuration
	// keeps the previous one aside.
	if err := os.WriteFile(filepath.Join(bin, "taskmanager"), []byte("#!/bin/sh\necho taskmanager v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out = install(t, "--bin", bin, "--config", "vm2.yaml", "--destdir", root, "--prefix", "/opt/weir")
	if code != 0 {
		t.Fatalf("upgrade: exit %d:\n%s", code, out)
	}
	for _, line := range []string{"installed /opt/weir/bin/weir-taskmanager", "unchanged /opt/weir/bin/weir-jobmanager",
		"kept the previous /etc/weir/config.yaml as config.yaml.previous", "installed /etc/weir/config.yaml"} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("upgrade output lacks %q:\n%s", line, out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "opt/weir/bin/weir-taskmanager")); string(got) != "#!/bin/sh\necho taskmanager v2\n" {
		t.Errorf("weir-taskmanager not replaced: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/weir/config.yaml.previous")); !strings.Contains(string(got), "vm1 (10.0.0.11)") {
		t.Errorf("config.yaml.previous is not vm1's file")
	}
}

// TestInstallRefuses: bad arguments change nothing and say what is wrong.
func TestInstallRefuses(t *testing.T) {
	bin := fakeBinaries(t)
	missing := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"relative prefix", []string{"--prefix", "opt/weir"}, 1,
			"install.sh: --prefix opt/weir: want an absolute directory (it is written into the units' ExecStart)\n"},
		{"prefix with a space", []string{"--prefix", "/opt/my weir"}, 1,
			"install.sh: --prefix /opt/my weir: want letters, digits and / . _ - only (it is written into the units' ExecStart)\n"},
		{"no binaries", []string{"--bin", missing}, 1,
			"install.sh: " + missing + "/jobmanager: not an executable file (build with make build, or pass --bin DIR)\n"},
		{"missing config", []string{"--config", "nope.yaml"}, 1, "install.sh: --config nope.yaml: not a readable file\n"},
		{"unknown argument", []string{"--force"}, 2,
			"install.sh: unknown argument --force\nusage: install.sh [--bin DIR] [--config FILE] [--prefix DIR] [--destdir DIR]\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			args := append([]string{"--bin", bin, "--destdir", root}, tc.args...)
			code, out := install(t, args...)
			if code != tc.code || out != tc.msg {
				t.Errorf("exit %d, output %q; want %d, %q", code, out, tc.code, tc.msg)
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Errorf("%s was created: %v", root, err)
			}
		})
	}
}
