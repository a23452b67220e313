package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Store is what a storage driver provides: the primitives of an object
// store, addressed by the driver's native paths ("/data/cp/job/chk-1" on a
// filesystem, "bucket/cp/job/chk-1" on S3). Everything else (layout,
// metadata, checksums, inline state, entropy) is common code on top of it,
// so that a driver implements these and nothing else. Every method that
// does I/O takes a context: it returns when ctx ends (the checkpoint's
// deadline, a task's cancellation), and a driver that retries does so only
// within ctx.
type Store interface {
	// Create opens a new object for writing; ctx bounds every write and
	// the close. The object need not be visible, or may be visible
	// partly, before close returns; nothing references it until then.
	// Names are random: a driver need not refuse an existing object.
	Create(ctx context.Context, p string) (BlobWriter, error)
	// Publish makes data visible at p atomically, all or nothing, and
	// only if nothing is there yet (filesystem: temporary file, fsync,
	// link; object store: one conditional PUT with If-None-Match: *). On
	// success the object and its name are durable. An existing object is
	// an error matching fs.ErrExist.
	Publish(ctx context.Context, p string, data []byte) error
	// Open reads the object from byte off on and returns its total size.
	// A missing object is an error matching fs.ErrNotExist.
	Open(ctx context.Context, p string, off int64) (io.ReadCloser, int64, error)
	// Remove deletes objects (an object store in batches); a missing one
	// is not an error.
	Remove(ctx context.Context, paths ...string) error
	// RemoveAll deletes everything under dir; only cleanup depends on it
	// (an object store lists the prefix), never correctness.
	RemoveAll(ctx context.Context, dir string) error
	// RemoveDirIfEmpty removes dir if it holds nothing (a no-op on object
	// stores, which have no directories).
	RemoveDirIfEmpty(ctx context.Context, dir string) error
	// MkdirUnique creates dir and fails with fs.ErrExist if it exists (a
	// no-op on object stores: random names are unique enough).
	MkdirUnique(ctx context.Context, dir string) error
	// Join appends a file name to a directory path.
	Join(dir, name string) string
}

// BlobWriter writes one object; Close makes it durable.
type BlobWriter interface {
	io.Writer
	Close() error
	// Abort discards the object (also after a write error).
	Abort() error
}

// Copier is implemented by stores that copy an object without moving its
// bytes through this process (S3 CopyObject). MaterializeSavepoint uses it
// when the checkpoint and the savepoint are in the same store; size is the
// source's size according to the metadata, and the copy must fail with a
// corrupt-data error naming src if the source has another size.
type Copier interface {
	Copy(ctx context.Context, src, dst string, size int64) error
}

// EntropyInjector is implemented by stores that spread state objects over
// key prefixes, as Flink's EntropyInjectingFileSystem: in a checkpoint
// directory that contains Key as a path segment, state objects are written
// with Key replaced by Length random characters, and _metadata (and
// everything else that must be found by its path) with Key removed.
type EntropyInjector interface {
	Entropy() (key string, length int)
}

// Driver opens the stores of one URI scheme, as a database/sql driver does
// the databases of its name. Register it in main.
type Driver interface {
	// Resolve parses a pointer with the driver's scheme
	// ("s3://bucket/a/b") into the Store that holds it and the pointer's
	// native path in that Store. It does no I/O. Errors name the pointer
	// and what is wrong with it (never credentials).
	Resolve(pointer string) (Store, string, error)
	// Display turns a native path back into the pointer users see.
	Display(native string) string
}

// Schemes built into this package; Register refuses to replace them.
const (
	fileScheme       = "file"
	jobManagerScheme = "jobmanager"
)

var schemeName = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)

// scheme is a registered driver: it resolves a pointer with its scheme to
// a store, a native path and the display form.
type scheme struct {
	resolve func(pointer string) (store Store, native string, err error)
	// display turns a native path back into the form users see.
	display func(native string, uri bool) string
}

var (
	schemesMu sync.RWMutex
	schemes   = map[string]scheme{
		fileScheme: {resolve: resolveFile, display: displayFile},
		jobManagerScheme: {
			resolve: func(p string) (Store, string, error) { return memStore, strings.TrimRight(p, "/"), nil },
			display: func(native string, _ bool) string { return native },
		},
	}
)

// Register makes a storage driver available for pointers name://... . The
// daemons' main functions register the drivers they support (library
// packages never do), so that a binary links only the drivers it uses.
// Registering a name again replaces its driver (a test that starts its own
// server does so); file and jobmanager are built in and cannot be replaced.
func Register(name string, d Driver) {
	if !schemeName.MatchString(name) || name == fileScheme || name == jobManagerScheme || d == nil {
		panic(fmt.Sprintf("snapshot: cannot register storage driver %q", name))
	}
	schemesMu.Lock()
	defer schemesMu.Unlock()
	schemes[name] = scheme{
		resolve: d.Resolve,
		display: func(native string, _ bool) string { return d.Display(native) },
	}
}

func lookupScheme(name string) (scheme, bool) {
	schemesMu.RLock()
	defer schemesMu.RUnlock()
	s, ok := schemes[name]
	return s, ok
}

// SupportedSchemes lists the pointers this process accepts, for messages:
// "file://, jobmanager://, s3:// or a plain path".
func SupportedSchemes() string {
	schemesMu.RLock()
	names := make([]string, 0, len(schemes))
	for k := range schemes {
		names = append(names, k+"://")
	}
	schemesMu.RUnlock()
	slices.Sort(names)
	return strings.Join(names, ", ") + " or a plain path"
}

// UnsupportedSchemeError is the error for a pointer whose scheme has no
// registered driver (hdfs:///cp on a cluster without one). It names the
// scheme and the supported ones.
type UnsupportedSchemeError struct {
	Scheme, Pointer, Supported string
}

func (e *UnsupportedSchemeError) Error() string {
	return fmt.Sprintf("unsupported storage scheme %q in %q (supported: %s)", e.Scheme, e.Pointer, e.Supported)
}

// CheckPointer reports, without I/O, whether pointer (a checkpoint or
// savepoint directory, or a _metadata file) is well formed and its scheme
// supported here: a savepoint to an unusable target is refused before
// any task takes its snapshot. An unsupported scheme is an
// *UnsupportedSchemeError.
func CheckPointer(pointer string) error {
	_, err := resolve(pointer)
	return err
}

// resolved is a pointer parsed by its driver.
type resolved struct {
	store  Store
	native string
	sch    scheme
	uri    bool // given as scheme://..., shown that way
}

func (r resolved) display(native string) string { return r.sch.display(native, r.uri) }

// resolve parses a user-given pointer: scheme://... or a plain path (file).
func resolve(pointer string) (resolved, error) {
	if pointer == "" {
		return resolved{}, errors.New("empty path")
	}
	name, _, isURI := strings.Cut(pointer, "://")
	if !isURI {
		name = fileScheme
	}
	sch, ok := lookupScheme(name)
	if !ok {
		return resolved{}, &UnsupportedSchemeError{Scheme: name, Pointer: pointer, Supported: SupportedSchemes()}
	}
	st, native, err := sch.resolve(pointer)
	if err != nil {
		return resolved{}, err
	}
	return resolved{store: st, native: native, sch: sch, uri: isURI}, nil
}

func resolveFile(pointer string) (Store, string, error) {
	p := pointer
	if strings.Contains(pointer, "://") {
		u, err := url.Parse(pointer)
		if err != nil {
			return nil, "", fmt.Errorf("invalid file URI %q: %w", pointer, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, "", fmt.Errorf("file URI %q names host %q: only local paths (file:///path) are supported", pointer, u.Host)
		}
		if u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, "", fmt.Errorf("invalid file URI %q: want file:///absolute/path", pointer)
		}
		p = u.Path
	}
	// Relative paths are made absolute against this process's working
	// directory, so that the pointers shown and stored are unambiguous.
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, "", fmt.Errorf("path %q: %w", pointer, err)
	}
	return defaultFS, abs, nil
}

func displayFile(native string, uri bool) string {
	if !uri {
		return native
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(native)}).String()
}
