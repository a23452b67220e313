package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
)

const jobManagerScheme = "jobmanager"

// memStore holds the objects of the jobmanager storage: in this process's
// memory, keyed by their jobmanager://<job>/chk-<id>/<name> paths, so that
// LoadMetadata can read back a jobmanager:// pointer like any other. Paths
// contain the job id, which is unique, so jobs in one process never meet.
var memStore = &memBlobs{objects: make(map[string][]byte)}

type memBlobs struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (m *memBlobs) create(p string) (blobWriter, error) {
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
func (w *memWriter) close() error                { return w.m.publish(w.name, w.buf.Bytes()) }
func (w *memWriter) abort() error                { return nil }

func (m *memBlobs) publish(p string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[p]; ok {
		return fmt.Errorf("%s exists already; refusing to overwrite it", p)
	}
	m.objects[p] = bytes.Clone(data)
	return nil
}

func (m *memBlobs) open(p string, off int64) (io.ReadCloser, int64, error) {
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

func (m *memBlobs) remove(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, p)
	return nil
}

func (m *memBlobs) removeAll(dir string) error {
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

func (m *memBlobs) removeDirIfEmpty(string) error { return nil }
func (m *memBlobs) mkdirUnique(string) error      { return nil }
func (m *memBlobs) join(dir, name string) string  { return strings.TrimRight(dir, "/") + "/" + name }
