package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
)

// memStore holds the objects of the jobmanager storage: in this process's
// memory, keyed by their jobmanager://<job>/chk-<id>/<name> paths, so that
// LoadMetadata can read back a jobmanager:// pointer like any other. Paths
// contain the job id, which is unique, so jobs in one process never meet.
var memStore = &memBlobs{objects: make(map[string][]byte)}

type memBlobs struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (m *memBlobs) Create(_ context.Context, p string) (BlobWriter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[p]; ok {
		return nil, &fs.PathError{Op: "create", Path: p, Err: fs.ErrExist}
	}
	return &memWriter{m: m, name: p}, nil
}

type memWriter struct {
	m    *memBlobs
	name string
	buf  bytes.Buffer
}

func (w *memWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *memWriter) Close() error                { return w.m.Publish(context.Background(), w.name, w.buf.Bytes()) }
func (w *memWriter) Abort() error                { return nil }

func (m *memBlobs) Publish(_ context.Context, p string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[p]; ok {
		return ExistsError(p)
	}
	m.objects[p] = bytes.Clone(data)
	return nil
}

func (m *memBlobs) Open(_ context.Context, p string, off int64) (io.ReadCloser, int64, error) {
	m.mu.Lock()
	b, ok := m.objects[p]
	m.mu.Unlock()
	if !ok {
		return nil, 0, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	if off > int64(len(b)) {
		return nil, 0, &fs.PathError{Op: "seek", Path: p, Err: errors.New("offset beyond the end")}
	}
	// Objects are never modified once published, so b can be shared.
	return io.NopCloser(bytes.NewReader(b[off:])), int64(len(b)), nil
}

func (m *memBlobs) Remove(_ context.Context, paths ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range paths {
		delete(m.objects, p)
	}
	return nil
}

func (m *memBlobs) RemoveAll(_ context.Context, dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := strings.TrimRight(dir, "/") + "/"
	for k := range m.objects {
		if strings.HasPrefix(k, prefix) {
			delete(m.objects, k)
		}
	}
	return nil
}

func (m *memBlobs) RemoveDirIfEmpty(context.Context, string) error { return nil }
func (m *memBlobs) MkdirUnique(context.Context, string) error      { return nil }
func (m *memBlobs) Join(dir, name string) string                   { return strings.TrimRight(dir, "/") + "/" + name }
