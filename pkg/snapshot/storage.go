package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Storage is a job's checkpoint storage (Flink's CheckpointStorage). The
// JobManager uses it to choose locations and commit metadata; TaskManagers
// use it to write state into the location the JobManager chose. It is safe
// for concurrent use.
type Storage interface {
	// CheckpointLocation returns where checkpoint checkpointID of the job
	// goes: <dir>/<job-id>/chk-<id>. It does no I/O; directories are
	// created when the first file is written.
	CheckpointLocation(jobID string, checkpointID int64) (Location, error)
	// SavepointLocation creates a new, uniquely named directory
	// savepoint-<jobid6>-<random12> in targetDir (any supported URI or
	// path, independent of where checkpoints go) and returns it.
	SavepointLocation(targetDir, jobID string) (Location, error)
	// ResolveLocation returns the location whose Path is pointer: a
	// TaskManager writes state where the JobManager's trigger said.
	ResolveLocation(pointer string) (Location, error)
	// Validate checks, at job submission, that the job's checkpoint
	// directory can be created and written (by writing and deleting a
	// probe file); the error names the directory and the cause.
	Validate(jobID string) error
}

// Location is the directory of one checkpoint or savepoint (Flink's
// CheckpointStorageLocation).
type Location interface {
	// Path is the external pointer shown to users and accepted by
	// LoadMetadata, OpenState and ResolveLocation, e.g.
	// /data/checkpoints/<job>/chk-7, file:///data/checkpoints/<job>/chk-7
	// or jobmanager://<job>/chk-7.
	Path() string
	// CreateStateFile opens a new state file for one task's state. name is
	// a hint that makes files recognizable (e.g. operator id and subtask);
	// a random suffix makes it unique. Small state may end up inline.
	CreateStateFile(name string) (StateWriter, error)
	// WriteMetadata validates and writes _metadata, the commit point; call
	// it last, once every state handle it references has been returned by
	// Close. It is atomic (all or nothing visible), durable when it returns
	// and never overwrites an existing _metadata. It returns the size.
	WriteMetadata(m *Metadata) (size int64, err error)
	// Dispose deletes this checkpoint: _metadata first, then the whole
	// directory. It touches nothing outside the directory.
	Dispose() error
}

// StateWriter writes the bytes of one state handle. It is not safe for
// concurrent use. Write errors are sticky and name the file.
type StateWriter interface {
	io.Writer
	// Close makes the state durable and returns its handle (relative path
	// or inline bytes, size, CRC-32C). After a failed Close nothing is
	// left behind.
	Close() (StateHandle, error)
	// Abort discards what was written. After a successful Close it does
	// nothing: the state then belongs to the checkpoint (Dispose).
	Abort() error
}

// Defaults of Options, as in Flink.
const (
	// DefaultFileInlineThreshold is Flink's state.storage.fs.memory-threshold.
	DefaultFileInlineThreshold = 20 << 10
	// DefaultJobManagerMaxStateSize is the limit of Flink's
	// JobManagerCheckpointStorage for one piece of state.
	DefaultJobManagerMaxStateSize = 5 << 20
)

// Options tunes a Storage; the zero value gives the defaults.
type Options struct {
	// FileInlineThreshold: with filesystem storage, state of at most this
	// many bytes is kept inline in the metadata rather than in a file of
	// its own. 0 means DefaultFileInlineThreshold; negative, never.
	FileInlineThreshold int
	// JobManagerMaxStateSize: with jobmanager storage, the most bytes one
	// state handle may hold. 0 means DefaultJobManagerMaxStateSize.
	JobManagerMaxStateSize int
}

// Open returns the storage for uri with default Options: "jobmanager",
// "file:///path", or a plain path ("/path", "./path").
func Open(uri string, log *zap.Logger) (Storage, error) {
	return OpenWithOptions(uri, log, Options{})
}

// OpenWithOptions is Open with Options.
func OpenWithOptions(uri string, log *zap.Logger, o Options) (Storage, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if o.FileInlineThreshold == 0 {
		o.FileInlineThreshold = DefaultFileInlineThreshold
	}
	if o.JobManagerMaxStateSize <= 0 {
		o.JobManagerMaxStateSize = DefaultJobManagerMaxStateSize
	}
	s := &storage{
		log:    log,
		jmMax:  int64(o.JobManagerMaxStateSize),
		inline: inlinePolicy{max: int64(o.FileInlineThreshold)},
	}
	if uri == jobManagerScheme || uri == jobManagerScheme+"://" {
		s.jm = true
		s.inline = inlinePolicy{max: s.jmMax, must: true}
		log.Warn("checkpoint storage is jobmanager: checkpoints are kept in the JobManager's memory and lost when it fails; not for production, set execution.checkpointing.dir to a durable directory")
		return s, nil
	}
	r, err := resolve(uri)
	if err != nil {
		return nil, fmt.Errorf("checkpoint storage: %w", err)
	}
	if r.store == memStore {
		return nil, fmt.Errorf("checkpoint storage %q: use plain \"jobmanager\"", uri)
	}
	s.root = r
	return s, nil
}

// inlinePolicy says which state stays inline: up to max bytes; beyond, a
// file, or an error if must (jobmanager storage has no files).
type inlinePolicy struct {
	max  int64
	must bool
}

type storage struct {
	log    *zap.Logger
	jm     bool
	jmMax  int64
	root   resolved // the checkpoint directory (not for jm)
	inline inlinePolicy
}

func (s *storage) jobDir(jobID string) (resolved, string, error) {
	if err := validJobID(jobID); err != nil {
		return resolved{}, "", err
	}
	if s.jm {
		return resolved{store: memStore, sch: schemes[jobManagerScheme], uri: true}, jobManagerScheme + "://" + jobID, nil
	}
	return s.root, s.root.store.join(s.root.native, jobID), nil
}

func (s *storage) CheckpointLocation(jobID string, checkpointID int64) (Location, error) {
	if checkpointID < 0 {
		return nil, fmt.Errorf("checkpoint id %d is negative", checkpointID)
	}
	r, dir, err := s.jobDir(jobID)
	if err != nil {
		return nil, err
	}
	return s.newLocation(r, r.store.join(dir, "chk-"+strconv.FormatInt(checkpointID, 10)), false), nil
}

func (s *storage) SavepointLocation(targetDir, jobID string) (Location, error) {
	if err := validJobID(jobID); err != nil {
		return nil, err
	}
	if targetDir == "" {
		return nil, errors.New("no savepoint directory: give a target directory or set execution.checkpointing.savepoint-dir")
	}
	r, err := resolve(targetDir)
	if err != nil {
		return nil, fmt.Errorf("savepoint directory: %w", err)
	}
	if r.store == memStore {
		return nil, fmt.Errorf("savepoint directory %q: savepoints must go to a durable directory", targetDir)
	}
	prefix := "savepoint-" + jobID[:min(6, len(jobID))] + "-"
	for range 5 {
		dir := r.store.join(r.native, prefix+randomHex(6))
		err = r.store.mkdirUnique(dir)
		if err == nil {
			return s.newLocation(r, dir, true), nil
		}
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	return nil, fmt.Errorf("create savepoint directory in %s: %w", r.display(r.native), err)
}

func (s *storage) ResolveLocation(pointer string) (Location, error) {
	r, err := resolve(pointer)
	if err != nil {
		return nil, err
	}
	dir := strings.TrimRight(r.native, "/")
	base := dir[strings.LastIndexAny(dir, "/"+string(os.PathSeparator))+1:]
	return s.newLocation(r, dir, strings.HasPrefix(base, "savepoint-")), nil
}

func (s *storage) Validate(jobID string) error {
	r, dir, err := s.jobDir(jobID)
	if err != nil {
		return err
	}
	if s.jm {
		return nil
	}
	probe := r.store.join(dir, ".weir-probe-"+randomHex(8))
	w, err := r.store.create(probe)
	if err == nil {
		_, err = w.Write([]byte("weir checks that checkpoints can be written here\n"))
		if err != nil {
			_ = w.abort()
		} else {
			err = w.close()
		}
	}
	if err == nil {
		err = r.store.remove(probe)
	}
	if err != nil {
		return fmt.Errorf("checkpoint directory %s is not usable: %w", r.display(dir), err)
	}
	return nil
}

func (s *storage) newLocation(r resolved, dir string, savepoint bool) *location {
	pol := s.inline
	if s.jm || r.store == memStore {
		// State of jobmanager storage is carried in the acknowledgements,
		// also for savepoints (whose _metadata is then a file holding it).
		pol = inlinePolicy{max: s.jmMax, must: true}
	}
	return &location{r: r, store: r.store, dir: dir, display: r.display(dir), inline: pol, savepoint: savepoint}
}

type location struct {
	r         resolved
	store     blobStore
	dir       string // native
	display   string
	inline    inlinePolicy
	savepoint bool
}

func (l *location) Path() string { return l.display }

// fileDisplay is how a file of the location is named in errors.
func (l *location) fileDisplay(name string) string { return l.r.display(l.store.join(l.dir, name)) }

func (l *location) CreateStateFile(name string) (StateWriter, error) {
	return &stateWriter{loc: l, name: fileNameFor(name)}, nil
}

// fileNameFor makes a safe, unique base name from a hint.
func fileNameFor(hint string) string {
	b := []byte(hint)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	name := string(b[:min(len(b), 64)])
	if name == "" || name[0] == '.' || name[0] == '_' {
		name = "state" + name // never hidden, never mistaken for _metadata
	}
	return name + "-" + randomHex(8)
}

func (l *location) WriteMetadata(m *Metadata) (int64, error) {
	if m.Savepoint != l.savepoint {
		return 0, fmt.Errorf("write _metadata of %s: metadata says savepoint=%t, the location is a %s", l.display, m.Savepoint, l.kind())
	}
	b, err := EncodeMetadata(m)
	if err == nil {
		err = l.store.publish(l.store.join(l.dir, MetadataFileName), b)
	}
	if err != nil {
		return 0, fmt.Errorf("write _metadata of %s: %w", l.display, err)
	}
	return int64(len(b)), nil
}

func (l *location) kind() string {
	if l.savepoint {
		return "savepoint"
	}
	return "checkpoint"
}

func (l *location) Dispose() error {
	// _metadata first: whenever it is visible, its state files exist.
	err := l.store.remove(l.store.join(l.dir, MetadataFileName))
	if err == nil {
		err = l.store.removeAll(l.dir)
	}
	if err != nil {
		return fmt.Errorf("dispose %s %s: %w", l.kind(), l.display, err)
	}
	return nil
}

// stateWriter keeps the first bytes in memory while they may stay inline,
// and moves to a file when they outgrow the inline threshold.
type stateWriter struct {
	loc    *location
	name   string
	buf    []byte
	w      blobWriter // nil while inline
	size   int64
	crc    uint32
	err    error // sticky
	closed bool
}

func (w *stateWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, fmt.Errorf("write state %s: writer is closed", w.name)
	}
	if w.w == nil && w.size+int64(len(p)) > w.loc.inline.max {
		if w.loc.inline.must {
			w.err = fmt.Errorf("state %s in %s is larger than jobmanager storage's limit of %d bytes; use a filesystem (set execution.checkpointing.dir)", w.name, w.loc.display, w.loc.inline.max)
			return 0, w.err
		}
		if err := w.spill(); err != nil {
			return 0, err
		}
	}
	w.crc = crc32.Update(w.crc, castagnoli, p)
	w.size += int64(len(p))
	if w.w == nil {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if n, err := w.w.Write(p); err != nil {
		w.err = fmt.Errorf("write state file %s: %w", w.loc.fileDisplay(w.name), err)
		return n, w.err
	}
	return len(p), nil
}

// spill creates the file and writes what was buffered.
func (w *stateWriter) spill() error {
	bw, err := w.loc.store.create(w.loc.store.join(w.loc.dir, w.name))
	if err != nil {
		w.err = fmt.Errorf("create state file in %s: %w", w.loc.display, err)
		return w.err
	}
	w.w = bw
	if _, err := bw.Write(w.buf); err != nil {
		w.err = fmt.Errorf("write state file %s: %w", w.loc.fileDisplay(w.name), err)
		return w.err
	}
	w.buf = nil
	return nil
}

func (w *stateWriter) Close() (StateHandle, error) {
	if w.closed {
		return StateHandle{}, fmt.Errorf("close state %s: closed already", w.name)
	}
	if w.err != nil {
		_ = w.Abort()
		return StateHandle{}, w.err
	}
	if w.w == nil && w.size > w.loc.inline.max {
		// Negative threshold: never inline, also empty state.
		if err := w.spill(); err != nil {
			_ = w.Abort()
			return StateHandle{}, err
		}
	}
	w.closed = true
	if w.w == nil {
		h := StateHandle{Size: w.size, CRC: w.crc, Inline: w.buf}
		if h.Inline == nil {
			h.Inline = []byte{}
		}
		return h, nil
	}
	if err := w.w.close(); err != nil {
		return StateHandle{}, fmt.Errorf("close state file %s: %w", w.loc.fileDisplay(w.name), err)
	}
	return StateHandle{Path: w.name, Size: w.size, CRC: w.crc}, nil
}

func (w *stateWriter) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.buf = nil
	if w.w != nil {
		return w.w.abort()
	}
	return nil
}

// locate resolves a location pointer (a directory) and the file name in it.
func locate(locationPath, name string) (resolved, string, error) {
	r, err := resolve(locationPath)
	if err != nil {
		return resolved{}, "", err
	}
	return r, r.store.join(r.native, name), nil
}

// OpenState opens the bytes of h, a handle of the checkpoint or savepoint
// whose directory is locationPath (Metadata.Dir). A missing file, or a size
// that differs from h.Size, is an error at once; a CRC-32C mismatch is an
// error at the end of the data, naming the file. The caller must read to
// io.EOF and fail the restore on any error, discarding what it read.
func OpenState(locationPath string, h StateHandle) (io.ReadCloser, error) {
	return openSegments(locationPath, h, 0, []segment{{n: h.Size, crc: h.CRC}})
}

type segment struct {
	n   int64
	crc uint32
}

func openSegments(locationPath string, h StateHandle, off int64, segs []segment) (io.ReadCloser, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("open state in %s: %w", locationPath, err)
	}
	var total int64
	for _, s := range segs {
		total += s.n
	}
	if h.IsInline() {
		if off+total > int64(len(h.Inline)) {
			return nil, corruptf("inline state of %d bytes has no range [%d, %d)", len(h.Inline), off, off+total)
		}
		rd := bytes.NewReader(h.Inline[off : off+total])
		return &verifyingReader{rc: io.NopCloser(rd), r: rd, name: "inline state in " + locationPath, segs: segs, left: segs[0].n}, nil
	}
	r, p, err := locate(locationPath, h.Path)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	name := r.display(p)
	rc, size, err := r.store.open(p, off)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("state file %s is missing: %w", name, err)
		}
		return nil, fmt.Errorf("open state file %s: %w", name, err)
	}
	if size != h.Size {
		_ = rc.Close()
		return nil, corruptf("state file %s has %d bytes, the metadata says %d (truncated or corrupt)", name, size, h.Size)
	}
	return &verifyingReader{rc: rc, r: io.LimitReader(rc, total), name: name, segs: segs, left: segs[0].n}, nil
}

// verifyingReader checks the CRC-32C of each segment as it ends.
type verifyingReader struct {
	rc   io.ReadCloser
	r    io.Reader
	name string
	segs []segment
	i    int   // current segment
	left int64 // bytes left in it
	crc  uint32
	err  error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if err := v.finishEmpty(); err != nil {
		return 0, err
	}
	if v.i == len(v.segs) {
		v.err = io.EOF
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Never read across a segment boundary, so each CRC covers its bytes.
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.crc = crc32.Update(v.crc, castagnoli, p[:n])
	v.left -= int64(n)
	if ferr := v.finishEmpty(); ferr != nil {
		return n, ferr
	}
	switch {
	case err == io.EOF && v.i < len(v.segs):
		v.err = corruptf("state file %s is truncated", v.name)
		return n, v.err
	case err != nil && err != io.EOF:
		v.err = fmt.Errorf("read state file %s: %w", v.name, err)
		return n, v.err
	}
	return n, nil
}

// finishEmpty checks and leaves every segment that has no bytes left.
func (v *verifyingReader) finishEmpty() error {
	for v.i < len(v.segs) && v.left == 0 {
		if v.crc != v.segs[v.i].crc {
			v.err = corruptf("checksum mismatch in state file %s: CRC-32C %08x, the metadata says %08x", v.name, v.crc, v.segs[v.i].crc)
			return v.err
		}
		v.i++
		v.crc = 0
		if v.i < len(v.segs) {
			v.left = v.segs[v.i].n
		}
	}
	return nil
}

func (v *verifyingReader) Close() error { return v.rc.Close() }

// LoadMetadata reads and checks the _metadata of a checkpoint or savepoint;
// path is its directory or the _metadata file itself. The returned
// Metadata's Dir is the directory, for OpenState.
func LoadMetadata(path string) (*Metadata, error) {
	r, err := resolve(path)
	if err != nil {
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	dir := strings.TrimRight(r.native, "/")
	for _, sep := range []string{"/", string(os.PathSeparator)} {
		if d, ok := strings.CutSuffix(dir, sep+MetadataFileName); ok {
			dir = d
			break
		}
	}
	file := r.store.join(dir, MetadataFileName)
	rc, _, err := r.store.open(file, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &notSnapshotError{path: path, why: "no _metadata"}
		}
		return nil, fmt.Errorf("load metadata %s: %w", r.display(file), err)
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return nil, fmt.Errorf("load metadata %s: %w", r.display(file), err)
	}
	m, err := DecodeMetadata(b)
	if err != nil {
		if ns, ok := err.(*notSnapshotError); ok {
			return nil, &notSnapshotError{path: path, why: ns.why}
		}
		if ce, ok := err.(*corruptError); ok {
			return nil, &corruptError{r.display(file) + ": " + ce.msg}
		}
		return nil, fmt.Errorf("%s: %w", r.display(file), err)
	}
	m.Dir = r.display(dir)
	return m, nil
}

// DisposeSavepoint deletes a savepoint: its _metadata (first, so that a
// half-deleted savepoint is never mistaken for one), the state files it
// references, then the directory if nothing else is in it. It refuses a
// path without a valid _metadata and a checkpoint's directory.
func DisposeSavepoint(path string) error {
	m, err := LoadMetadata(path)
	if err != nil {
		return fmt.Errorf("dispose savepoint: %w", err)
	}
	if !m.Savepoint {
		return fmt.Errorf("dispose savepoint: %s holds checkpoint %d of job %s, not a savepoint; refusing to delete it", m.Dir, m.CheckpointID, m.JobID)
	}
	r, err := resolve(m.Dir)
	if err != nil {
		return fmt.Errorf("dispose savepoint: %w", err)
	}
	if err := r.store.remove(r.store.join(r.native, MetadataFileName)); err != nil {
		return fmt.Errorf("dispose savepoint %s: %w", m.Dir, err)
	}
	var errs []error
	seen := make(map[string]bool)
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, o := range st.State {
				if o.IsInline() || seen[o.Path] {
					continue
				}
				seen[o.Path] = true // validated: a base name inside the directory
				if err := r.store.remove(r.store.join(r.native, o.Path)); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if len(errs) == 0 {
		if err := r.store.removeDirIfEmpty(r.native); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dispose savepoint %s: _metadata deleted, but: %w", m.Dir, err)
	}
	return nil
}
