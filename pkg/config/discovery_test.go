package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigFilePrecedence(t *testing.T) {
	cases := []struct {
		name       string
		flag, env  string
		files      []string // paths that exist
		wantPath   string
		wantSource string
		wantErr    string
	}{
		{"flag wins over env and /etc", "/a/x.yaml", "/conf", []string{"/a/x.yaml", "/conf/config.yaml", SystemConfigFile}, "/a/x.yaml", SourceFlag, ""},
		{"env wins over /etc", "", "/conf", []string{"/conf/config.yaml", SystemConfigFile}, "/conf/config.yaml", SourceEnv, ""},
		{"/etc when present", "", "", []string{SystemConfigFile}, SystemConfigFile, SourceSystem, ""},
		{"defaults when nothing", "", "", nil, "", SourceDefaults, ""},
		{"missing flag file is an error", "/a/x.yaml", "/conf", []string{"/conf/config.yaml"}, "", "",
			`config file "/a/x.yaml" (--config) does not exist or is not a regular file`},
		{"env dir without config.yaml is an error, not /etc", "", "/conf", []string{SystemConfigFile}, "", "",
			`config file "/conf/config.yaml" (WEIR_CONF_DIR="/conf") does not exist or is not a regular file`},
		{"env dir with only flink-conf.yaml says so", "", "/conf", []string{"/conf/flink-conf.yaml"}, "", "",
			`config file "/conf/config.yaml" (WEIR_CONF_DIR="/conf") does not exist or is not a regular file; to read the legacy "/conf/flink-conf.yaml", pass it with --config`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == ConfDirEnv {
					return tc.env
				}
				return ""
			}
			exists := func(p string) bool {
				for _, f := range tc.files {
					if f == p {
						return true
					}
				}
				return false
			}
			path, source, err := ConfigFile(tc.flag, getenv, exists)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if path != tc.wantPath || source != tc.wantSource || gotErr != tc.wantErr {
				t.Errorf("ConfigFile = (%q, %q, %q), want (%q, %q, %q)", path, source, gotErr, tc.wantPath, tc.wantSource, tc.wantErr)
			}
		})
	}
}

func TestFileExists(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(f, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !FileExists(f) || FileExists(dir) || FileExists(filepath.Join(dir, "nope")) {
		t.Errorf("FileExists: file %v dir %v missing %v; want true false false", FileExists(f), FileExists(dir), FileExists(filepath.Join(dir, "nope")))
	}
	t.Setenv(ConfDirEnv, dir)
	path, source, err := FindConfigFile("")
	if err != nil || path != f || source != SourceEnv {
		t.Errorf("FindConfigFile = %q %q %v", path, source, err)
	}
}
