package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// wantAbsolute is what an Option.AbsolutePathOrURI value must be.
const wantAbsolute = "an absolute path or a URI such as file:///var/weir/checkpoints, not a relative path, " +
	"which the JobManager and each TaskManager would resolve against its own working directory"

// IsAbsolutePathOrURI reports whether s names the same place in every
// process: an absolute path, or a URI (scheme://..., the scheme as RFC 3986
// has it: a letter, then letters, digits, '+', '-' and '.'). Whether a
// driver for the scheme exists is for the storage to say.
func IsAbsolutePathOrURI(s string) bool {
	if scheme, _, ok := strings.Cut(s, "://"); ok && validScheme(scheme) {
		return true
	}
	return filepath.IsAbs(s)
}

func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// badDirList describes what is wrong with an AbsoluteDirList value, naming
// the entry; "" when it is valid. A blank value is an empty list.
func badDirList(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	for i, e := range strings.Split(raw, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return fmt.Sprintf("comma-separated absolute directories, but entry %d is empty", i+1)
		case !filepath.IsAbs(e):
			return fmt.Sprintf("comma-separated absolute directories, but entry %d (%q) is relative, "+
				"which each process would resolve against its own working directory", i+1, e)
		}
	}
	return ""
}
