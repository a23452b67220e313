package snapshot

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// osFile is the part of *os.File that writing needs; tests inject failing
// ones to simulate a full disk.
type osFile interface {
	io.Writer
	Sync() error
	Close() error
}

// fsStore is the filesystem driver (file:// and plain paths).
type fsStore struct {
	// createFile creates a new file exclusively (O_EXCL).
	createFile func(name string) (osFile, error)
}

var defaultFS = &fsStore{createFile: func(name string) (osFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}}

const writeBufferSize = 64 << 10

// The filesystem driver's calls are local syscalls: they are not
// interrupted by ctx (a hung NFS mount hangs them, as it would any reader);
// ctx is checked before each one starts.

func (s *fsStore) Create(ctx context.Context, p string) (BlobWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := s.createFile(p)
	if err != nil {
		return nil, err
	}
	return &fsWriter{ctx: ctx, name: p, f: f, w: bufio.NewWriterSize(f, writeBufferSize)}, nil
}

type fsWriter struct {
	ctx  context.Context
	name string
	f    osFile
	w    *bufio.Writer
}

func (w *fsWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// close flushes and fsyncs: a state file is durable before it is
// acknowledged. (Its directory entry is made durable by publish, which
// fsyncs the directory before _metadata can reference it.)
func (w *fsWriter) Close() error {
	err := w.w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(w.name)
		return err // the caller names the file
	}
	return nil
}

func (w *fsWriter) Abort() error {
	_ = w.f.Close()
	if err := os.Remove(w.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// publish writes a temporary file in the same directory, fsyncs it, links
// it to its final name (link fails if the name exists: no overwrite), and
// fsyncs the directory and its parent so that the name, and the names of
// the state files written before, survive a crash.
func (s *fsStore) Publish(ctx context.Context, p string, data []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := p + ".inprogress-" + randomHex(8)
	f, err := s.createFile(tmp)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }() // also after a successful link
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return pathErr("write", tmp, err)
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ExistsError(p)
		}
		// Some filesystems (FUSE, SMB) have no hard links. rename
		// overwrites, so check first; the race is accepted there.
		if _, serr := os.Lstat(p); serr == nil {
			return ExistsError(p)
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems refuse fsync on a directory; nothing more can be done.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	if err != nil {
		return pathErr("sync directory", dir, err)
	}
	return nil
}

func (s *fsStore) Open(ctx context.Context, p string, off int64) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			err = &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = pathErr("open", p, errors.New("not a regular file"))
	}
	if err == nil && off > 0 {
		_, err = f.Seek(off, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func (s *fsStore) Remove(ctx context.Context, paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *fsStore) RemoveAll(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func (s *fsStore) RemoveDirIfEmpty(_ context.Context, dir string) error {
	err := os.Remove(dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return nil
	}
	return err
}

func (s *fsStore) MkdirUnique(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	return os.Mkdir(dir, 0o755)
}

func (s *fsStore) Join(dir, name string) string { return filepath.Join(dir, name) }

// errExists is what Publish returns, inside a *fs.PathError, when the
// object exists already.
var errExists = existsErr{}

type existsErr struct{}

func (existsErr) Error() string        { return "exists already; refusing to overwrite it" }
func (existsErr) Is(target error) bool { return target == fs.ErrExist }

// ExistsError is the error of Store.Publish for an object that exists
// already: "<p> exists already; refusing to overwrite it", matching
// fs.ErrExist.
func ExistsError(p string) error { return &existsPathError{p} }

type existsPathError struct{ path string }

func (e *existsPathError) Error() string { return e.path + " " + errExists.Error() }
func (e *existsPathError) Unwrap() error { return errExists }

// pathErr wraps err as a *fs.PathError unless it names its path already.
func pathErr(op, p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

func randomHex(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
