// Package allowpath decides whether a path that a job reads or writes lies
// within io.allowed-paths. The JobManager asks at submission (file-source
// and file-sink paths, checkpoint, savepoint and dispose directories) and
// the operators ask again on the TaskManager, each with its own
// configuration, as a second line.
//
// Invariants:
//   - A path is compared after resolving it the way the kernel would when
//     the job opens or creates it: every symbolic link of the part that
//     exists is followed, and ".." applies to the resolved parent, so
//     neither a link inside an allowed directory nor "/data/../etc" gets
//     out. The part that does not exist yet is taken as written: it will
//     be created as plain directories.
//   - An allowed directory is resolved the same way at each check, so that
//     an allowed /tmp that is a link to /private/tmp still matches.
//   - Containment is by path components: /data allows /data/x, never
//     /database.
//   - A nil *Checker allows everything (io.allowed-paths empty: weir's
//     behaviour before the key existed).
//
// Resolution and use are two moments: a link created between the check
// and the open is not seen. The TaskManager's check at open narrows that
// window; it does not close it (that would need openat2 RESOLVE_BENEATH).
package allowpath

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/weirstream/weir/pkg/config"
)

// maxLinks bounds the symbolic links followed in one path, as the
// kernel's ELOOP does (40 on Linux).
const maxLinks = 40

// Checker holds the allowed directories as configured.
type Checker struct {
	dirs []string // absolute, cleaned, as configured
}

// Parse reads an io.allowed-paths value: comma-separated absolute
// directories, spaces around each ignored. An empty value returns nil (no
// restriction). An empty entry or a relative one is an error naming it.
func Parse(value string) (*Checker, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	var c Checker
	for i, e := range strings.Split(value, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return nil, fmt.Errorf("%s: entry %d is empty (in %q): remove the extra comma", config.IOAllowedPaths.Key, i+1, value)
		case strings.IndexByte(e, 0) >= 0:
			return nil, fmt.Errorf("%s: entry %d has a NUL byte", config.IOAllowedPaths.Key, i+1)
		case !filepath.IsAbs(e):
			return nil, fmt.Errorf("%s: entry %q is not an absolute directory: "+
				"each process would resolve it against its own working directory", config.IOAllowedPaths.Key, e)
		}
		c.dirs = append(c.dirs, filepath.Clean(e))
	}
	return &c, nil
}

// FromConfig parses cfg's io.allowed-paths; nil when it is empty.
func FromConfig(cfg *config.Config) (*Checker, error) {
	return Parse(cfg.String(config.IOAllowedPaths))
}

// Dirs returns the allowed directories as configured.
func (c *Checker) Dirs() []string {
	if c == nil {
		return nil
	}
	return append([]string(nil), c.dirs...)
}

// DeniedError is a path outside every allowed directory.
type DeniedError struct {
	Path     string   // as given
	Resolved string   // after resolving links and ".."
	Allowed  []string // io.allowed-paths

	checked string // the file path in Path (a file:// URI's path), if different
}

func (e *DeniedError) Error() string {
	via, checked := "", e.Path
	if e.checked != "" {
		checked = e.checked
	}
	if e.Resolved != checked {
		via = " (resolved to " + e.Resolved + ")"
	}
	return fmt.Sprintf("path %s%s is outside %s (%s)", e.Path, via, config.IOAllowedPaths.Key, strings.Join(e.Allowed, ", "))
}

// Check returns nil when path, existing or to be created, lies within an
// allowed directory once resolved; a *DeniedError when it does not; another
// error when it cannot be resolved (a loop of links, a directory this
// process may not read), which denies it too. A relative path is taken
// against the working directory, as the open that follows would.
func (c *Checker) Check(path string) error {
	if c == nil {
		return nil
	}
	res, err := Resolve(path)
	if err != nil {
		return fmt.Errorf("path %s: %w (checking %s)", path, err, config.IOAllowedPaths.Key)
	}
	for _, d := range c.dirs {
		rd, err := Resolve(d)
		if err != nil {
			continue // an allowed directory that cannot be resolved allows nothing
		}
		if within(res, rd) {
			return nil
		}
	}
	return &DeniedError{Path: path, Resolved: res, Allowed: c.Dirs()}
}

// CheckPointer checks a checkpoint or savepoint pointer: a plain path or a
// file:// URI is checked as a path; any other scheme (s3://, jobmanager://)
// names no local file and is not restricted.
func (c *Checker) CheckPointer(pointer string) error {
	if c == nil {
		return nil
	}
	p := pointer
	if scheme, _, ok := strings.Cut(pointer, "://"); ok {
		if !strings.EqualFold(scheme, "file") {
			return nil
		}
		u, err := url.Parse(pointer)
		if err != nil {
			return fmt.Errorf("path %s: %w", pointer, err)
		}
		p = u.Path
	}
	if err := c.Check(p); err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			d.Path, d.checked = pointer, p
		}
		return err
	}
	return nil
}

func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// Resolve returns the absolute path that path names once every symbolic
// link of its existing part is followed and each ".." applied to the
// resolved parent; components that do not exist are kept as written.
func Resolve(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty path")
	}
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		path = wd + "/" + path
	}
	rest := strings.Split(path, "/")
	cur := "/" // resolved so far: no links, no "." or ".."
	links := 0
	for len(rest) > 0 {
		comp := rest[0]
		rest = rest[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		fi, err := os.Lstat(next)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			// Not there (yet): created as written, or never opened.
			cur = next
			continue
		default:
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("more than %d symbolic links", maxLinks)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, nil
}
