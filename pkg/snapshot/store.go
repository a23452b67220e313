package snapshot

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// blobStore is what a storage driver provides: the primitives of an object
// store, addressed by the driver's native paths. Everything else (layout,
// metadata, checksums, inline state) is common code on top of it, so that
// an s3:// driver is one more blobStore.
type blobStore interface {
	// create opens a new object for writing. It fails if the object
	// exists. The object need not be visible, or may be visible partly,
	// before close returns; nothing references it until then.
	create(p string) (blobWriter, error)
	// publish makes data visible at p atomically, all or nothing, and
	// only if nothing is there yet (filesystem: temporary file, fsync,
	// link; object store: a single conditional PUT). On success the
	// object and its name are durable.
	publish(p string, data []byte) error
	// open reads the object from byte off on and returns its total size.
	// A missing object is an error matching fs.ErrNotExist.
	open(p string, off int64) (io.ReadCloser, int64, error)
	// remove deletes one object; a missing one is not an error.
	remove(p string) error
	// removeAll deletes everything under dir; only cleanup depends on it
	// (an object store lists the prefix), never correctness.
	removeAll(dir string) error
	// removeDirIfEmpty removes dir if it holds nothing (a no-op on object
	// stores, which have no directories).
	removeDirIfEmpty(dir string) error
	// mkdirUnique creates dir and fails with fs.ErrExist if it exists (a
	// no-op on object stores: random names are unique enough).
	mkdirUnique(dir string) error
	// join appends a file name to a directory path.
	join(dir, name string) string
}

// blobWriter writes one object; close makes it durable.
type blobWriter interface {
	io.Writer
	close() error
	// abort discards the object (also after a write error).
	abort() error
}

// scheme is a registered driver (database/sql style): it resolves a
// pointer with its scheme to a store, a native path and the display form.
type scheme struct {
	resolve func(pointer string) (store blobStore, native string, err error)
	// display turns a native path back into the form users see.
	display func(native string, uri bool) string
}

var schemes = map[string]scheme{
	"file": {resolve: resolveFile, display: displayFile},
	jobManagerScheme: {
		resolve: func(p string) (blobStore, string, error) { return memStore, strings.TrimRight(p, "/"), nil },
		display: func(native string, _ bool) string { return native },
	},
}

func knownSchemes() string {
	var names []string
	for k := range schemes {
		names = append(names, k+"://")
	}
	slices.Sort(names)
	return strings.Join(names, ", ") + " or a plain path"
}

// resolved is a pointer parsed by its driver.
type resolved struct {
	store  blobStore
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
		name = "file"
	}
	sch, ok := schemes[name]
	if !ok {
		return resolved{}, fmt.Errorf("unknown storage scheme %q in %q (known: %s)", name, pointer, knownSchemes())
	}
	st, native, err := sch.resolve(pointer)
	if err != nil {
		return resolved{}, err
	}
	return resolved{store: st, native: native, sch: sch, uri: isURI}, nil
}

func resolveFile(pointer string) (blobStore, string, error) {
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
