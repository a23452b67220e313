package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// Where a daemon or the CLI finds its configuration file, as Flink finds
// $FLINK_CONF_DIR/config.yaml.
const (
	// ConfDirEnv names the environment variable of a configuration
	// directory holding ConfigFileName (Flink: FLINK_CONF_DIR).
	ConfDirEnv = "WEIR_CONF_DIR"
	// ConfigFileName is the file read from a configuration directory.
	ConfigFileName = "config.yaml"
	// SystemConfigFile is read when neither --config nor WEIR_CONF_DIR is
	// given, if it exists.
	SystemConfigFile = "/etc/weir/config.yaml"
)

// The sources ConfigFile reports, for the log line that says which file a
// process read.
const (
	SourceFlag     = "--config"
	SourceEnv      = "$" + ConfDirEnv
	SourceSystem   = SystemConfigFile
	SourceDefaults = "defaults"
)

// ConfigFile decides which configuration file a process reads, the first of:
//
//  1. flag, the value of --config, if not empty: it must exist;
//  2. $WEIR_CONF_DIR/config.yaml, if getenv(WEIR_CONF_DIR) is not empty: it
//     must exist (a directory without config.yaml is an error, not a silent
//     fall-through to the defaults);
//  3. /etc/weir/config.yaml, if it exists;
//  4. none: path is "" and the process runs on the defaults (and -D flags).
//
// source is SourceFlag, SourceEnv, SourceSystem or SourceDefaults. getenv
// and exists are os.Getenv and FileExists outside tests. An error names the
// path and where it came from; -D overrides apply on top of the file
// whichever it is (Load).
func ConfigFile(flag string, getenv func(string) string, exists func(string) bool) (path, source string, err error) {
	if flag != "" {
		if !exists(flag) {
			return "", "", fmt.Errorf("config file %q (--config) does not exist or is not a regular file", flag)
		}
		return flag, SourceFlag, nil
	}
	if dir := getenv(ConfDirEnv); dir != "" {
		p := filepath.Join(dir, ConfigFileName)
		if !exists(p) {
			msg := fmt.Sprintf("config file %q (%s=%q) does not exist or is not a regular file", p, ConfDirEnv, dir)
			if legacy := filepath.Join(dir, "flink-conf.yaml"); exists(legacy) {
				// Flink 1.x's file: weir reads its flat form too, but only
				// when named, so that a directory is never read half-way.
				msg += fmt.Sprintf("; to read the legacy %q, pass it with --config", legacy)
			}
			return "", "", fmt.Errorf("%s", msg)
		}
		return p, SourceEnv, nil
	}
	if exists(SystemConfigFile) {
		return SystemConfigFile, SourceSystem, nil
	}
	return "", SourceDefaults, nil
}

// FindConfigFile is ConfigFile with the process's environment and file
// system.
func FindConfigFile(flag string) (path, source string, err error) {
	return ConfigFile(flag, os.Getenv, FileExists)
}

// FileExists reports whether path names a regular file (after symbolic
// links), the exists of ConfigFile.
func FileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
