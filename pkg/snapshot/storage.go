package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

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
	// path, independent of where checkpoints go) and returns it. A
	// savepoint never has entropy injected: it stays self-contained.
	SavepointLocation(ctx context.Context, targetDir, jobID string) (Location, error)
	// ResolveLocation returns the location whose Path is pointer: a
	// TaskManager writes state where the JobManager's trigger said.
	ResolveLocation(pointer string) (Location, error)
	// Validate checks, at job submission, that the job's checkpoint
	// directory can be created and written (by writing and deleting a
	// probe file); the error names the directory and the cause.
	Validate(ctx context.Context, jobID string) error
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
	// ctx bounds all I/O of the writer, up to its Close or Abort.
	CreateStateFile(ctx context.Context, name string) (StateWriter, error)
	// WriteMetadata validates and writes _metadata, the commit point; call
	// it last, once every state handle it references has been returned by
	// Close. It is atomic (all or nothing visible), durable when it returns
	// and never overwrites an existing _metadata. It returns the size.
	WriteMetadata(ctx context.Context, m *Metadata) (size int64, err error)
	// Dispose deletes this checkpoint: _metadata first, then the state
	// objects it references that lie outside the directory (entropy
	// injection), then the whole directory. It touches nothing else.
	Dispose(ctx context.Context) error
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
	// DefaultJobManagerMaxStateSize bounds, with jobmanager storage, all
	// the state one subtask acknowledges for one checkpoint (Flink's
	// JobManagerCheckpointStorage bounds each piece of state by 5 MiB, which
	// an acknowledgement of several pieces can exceed gRPC's limit with).
	DefaultJobManagerMaxStateSize = 1 << 20
	// MaxInlinePerLocation bounds the inline bytes of all the state written
	// to one Location (what one subtask acknowledges for one checkpoint)
	// with file and object storage: however many operators a task chains,
	// its acknowledgement stays far below gRPC's 4 MiB message limit; the
	// state that does not fit is written as objects.
	MaxInlinePerLocation = 1 << 20
)

// Options tunes a Storage; the zero value gives the defaults.
type Options struct {
	// FileInlineThreshold: with filesystem storage, state of at most this
	// many bytes is kept inline in the metadata rather than in a file of
	// its own. 0 means DefaultFileInlineThreshold; negative, never.
	FileInlineThreshold int
	// JobManagerMaxStateSize: with jobmanager storage, the most bytes of
	// state one Location (one subtask's acknowledgement) may hold. 0 means
	// DefaultJobManagerMaxStateSize.
	JobManagerMaxStateSize int
}

// Open returns the storage for uri with default Options: "jobmanager",
// "file:///path", a plain path ("/path", "./path"), or a pointer of a
// registered driver ("s3://bucket/prefix"). It does no I/O.
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
		inline: inlinePolicy{max: int64(o.FileInlineThreshold), budget: MaxInlinePerLocation},
	}
	if uri == jobManagerScheme || uri == jobManagerScheme+"://" {
		s.jm = true
		s.inline = inlinePolicy{max: s.jmMax, budget: s.jmMax, must: true}
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
	r.native, s.entropy = removeEntropyKey(r.store, r.native)
	s.root = r
	return s, nil
}

// inlinePolicy says which state stays inline: pieces of up to max bytes,
// while the location's budget of inline bytes lasts; beyond, a file, or an
// error if must (jobmanager storage has no files).
type inlinePolicy struct {
	max    int64
	budget int64 // of all the inline state of one location
	must   bool
}

type storage struct {
	log    *zap.Logger
	jm     bool
	jmMax  int64
	root   resolved // the checkpoint directory, entropy key removed (not for jm)
	inline inlinePolicy
	// entropy says where state objects of checkpoints under root get
	// their random characters (at < 0: nowhere).
	entropy entropy
}

// entropy is where, in a directory's native path without the entropy key,
// state objects get length random characters and a separator inserted
// (Flink's entropy injection): at a byte offset, at < 0 for none.
type entropy struct {
	at, length int
}

var noEntropy = entropy{at: -1}

// removeEntropyKey removes the store's entropy key from native, if the
// store injects entropy and the key is a segment of native, and returns
// where the entropy goes.
func removeEntropyKey(st Store, native string) (string, entropy) {
	ei, ok := st.(EntropyInjector)
	if !ok {
		return native, noEntropy
	}
	key, n := ei.Entropy()
	if key == "" || n <= 0 {
		return native, noEntropy
	}
	segs := strings.Split(native, "/")
	at := 0
	for i, seg := range segs {
		if seg == key {
			rest := slices.Concat(segs[:i], segs[i+1:])
			return strings.Join(rest, "/"), entropy{at: at, length: n}
		}
		at += len(seg) + 1
	}
	return native, noEntropy
}

// entropyChars are those of Flink's entropy: lower-case letters and
// digits, valid in every object store's keys.
const entropyChars = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomEntropy(n int) string {
	b := []byte(randomHex(n)) // random bytes; only their values matter
	for i := range b {
		b[i] = entropyChars[int(b[i])%len(entropyChars)]
	}
	return string(b[:n])
}

func (s *storage) jobDir(jobID string) (resolved, string, error) {
	if err := validJobID(jobID); err != nil {
		return resolved{}, "", err
	}
	if s.jm {
		sch, _ := lookupScheme(jobManagerScheme)
		return resolved{store: memStore, sch: sch, uri: true}, jobManagerScheme + "://" + jobID, nil
	}
	return s.root, s.root.store.Join(s.root.native, jobID), nil
}

func (s *storage) CheckpointLocation(jobID string, checkpointID int64) (Location, error) {
	if checkpointID < 0 {
		return nil, fmt.Errorf("checkpoint id %d is negative", checkpointID)
	}
	r, dir, err := s.jobDir(jobID)
	if err != nil {
		return nil, err
	}
	l := s.newLocation(r, r.store.Join(dir, "chk-"+strconv.FormatInt(checkpointID, 10)), false)
	if !s.jm {
		l.entropy = s.entropy
	}
	return l, nil
}

func (s *storage) SavepointLocation(ctx context.Context, targetDir, jobID string) (Location, error) {
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
	r.native, _ = removeEntropyKey(r.store, r.native)
	prefix := "savepoint-" + jobID[:min(6, len(jobID))] + "-"
	for range 5 {
		dir := r.store.Join(r.native, prefix+randomHex(6))
		err = r.store.MkdirUnique(ctx, dir)
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
	l := s.newLocation(r, dir, strings.HasPrefix(base, "savepoint-"))
	// A checkpoint of this storage gets its entropy where the storage's
	// own checkpoints do.
	if !s.jm && !l.savepoint && r.store == s.root.store && strings.HasPrefix(dir, s.root.native+"/") {
		l.entropy = s.entropy
	}
	return l, nil
}

func (s *storage) Validate(ctx context.Context, jobID string) error {
	r, dir, err := s.jobDir(jobID)
	if err != nil {
		return err
	}
	if s.jm {
		return nil
	}
	probe := r.store.Join(dir, ".weir-probe-"+randomHex(8))
	w, err := r.store.Create(ctx, probe)
	if err == nil {
		_, err = w.Write([]byte("weir checks that checkpoints can be written here\n"))
		if err != nil {
			_ = w.Abort()
		} else {
			err = w.Close()
		}
	}
	if err == nil {
		err = r.store.Remove(ctx, probe)
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
		pol = inlinePolicy{max: s.jmMax, budget: s.jmMax, must: true}
	}
	l := &location{r: r, store: r.store, dir: dir, display: r.display(dir), inline: pol, savepoint: savepoint, entropy: noEntropy}
	l.inlineLeft.Store(pol.budget)
	return l
}

type location struct {
	r         resolved
	store     Store
	dir       string // native
	display   string
	inline    inlinePolicy
	savepoint bool
	entropy   entropy // where new state objects get their entropy
	// inlineLeft is what is left of inline.budget: state writers of one
	// location may run concurrently (one per operator of a chain).
	inlineLeft atomic.Int64
}

func (l *location) Path() string { return l.display }

// fileDisplay is how a file of the location is named in errors.
func (l *location) fileDisplay(name string) string { return l.r.display(l.store.Join(l.dir, name)) }

func (l *location) CreateStateFile(ctx context.Context, name string) (StateWriter, error) {
	return &stateWriter{ctx: ctx, loc: l, name: fileNameFor(name)}, nil
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

func (l *location) WriteMetadata(ctx context.Context, m *Metadata) (int64, error) {
	if m.Savepoint != l.savepoint {
		return 0, fmt.Errorf("write _metadata of %s: metadata says savepoint=%t, the location is a %s", l.display, m.Savepoint, l.kind())
	}
	b, err := EncodeMetadata(m)
	if err == nil {
		err = l.store.Publish(ctx, l.store.Join(l.dir, MetadataFileName), b)
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

func (l *location) Dispose(ctx context.Context) error {
	// With entropy, state objects lie outside the directory: the
	// _metadata names them (pointers, not listings). A checkpoint that
	// never completed has none; the caller disposes of the state its tasks
	// acknowledged with DisposeState.
	var outside []string
	if l.entropy.at >= 0 {
		if m, err := loadMetadataAt(ctx, l.r, l.dir); err == nil {
			outside = objectPaths(l.store, l.dir, m.Operators, true)
		}
	}
	// _metadata first: whenever it is visible, its state files exist.
	err := l.store.Remove(ctx, l.store.Join(l.dir, MetadataFileName))
	if err == nil {
		err = l.store.Remove(ctx, outside...)
	}
	if err == nil {
		err = l.store.RemoveAll(ctx, l.dir)
	}
	if err != nil {
		return fmt.Errorf("dispose %s %s: %w", l.kind(), l.display, err)
	}
	return nil
}

// objectPaths returns the native paths of the state objects of ops that
// are not inline, each once; with onlyEntropy, only those outside dir.
// Handles are validated (Metadata.Validate), so every path stays within
// dir or its entropy-injected twin.
func objectPaths(st Store, dir string, ops []OperatorState, onlyEntropy bool) []string {
	var out []string
	seen := make(map[string]bool)
	for _, op := range ops {
		for _, sub := range op.Subtasks {
			for _, o := range sub.State {
				if o.IsInline() || (onlyEntropy && o.Entropy == "") {
					continue
				}
				p, err := objectPath(st, dir, o.StateHandle)
				if err != nil || seen[p] {
					continue
				}
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// objectPath returns where the file of h (not inline) is: in dir, or, if
// it was written with entropy, in dir with the entropy inserted where the
// key was. A checkpoint written with entropy cannot move: its state is
// found only at the offset recorded.
func objectPath(st Store, dir string, h StateHandle) (string, error) {
	if h.Entropy == "" {
		return st.Join(dir, h.Path), nil
	}
	at := h.EntropyAt
	if at > len(dir) || (at > 0 && dir[at-1] != '/') {
		return "", corruptf("state file %s was written with entropy at byte %d of its checkpoint's path, which %s does not have (a checkpoint written with entropy injection cannot be moved)", h.Path, at, dir)
	}
	return st.Join(dir[:at]+h.Entropy+"/"+dir[at:], h.Path), nil
}

// DisposeState deletes the files of state objects of the checkpoint in
// locationPath that belong to no completed checkpoint: those of an
// acknowledgement that came too late, or those a task wrote for a
// checkpoint it then declined. Inline state needs nothing.
func DisposeState(ctx context.Context, locationPath string, objs []StateObject) error {
	r, err := resolve(locationPath)
	if err != nil {
		return fmt.Errorf("dispose state: %w", err)
	}
	var paths []string
	for _, o := range objs {
		if o.IsInline() {
			continue
		}
		if err := o.StateHandle.validate(); err != nil {
			return fmt.Errorf("dispose state in %s: %w", locationPath, err)
		}
		p, err := objectPath(r.store, r.native, o.StateHandle)
		if err != nil {
			return fmt.Errorf("dispose state in %s: %w", locationPath, err)
		}
		paths = append(paths, p)
	}
	if err := r.store.Remove(ctx, paths...); err != nil {
		return fmt.Errorf("dispose state in %s: %w", locationPath, err)
	}
	return nil
}

// stateWriter keeps the first bytes in memory while they may stay inline,
// and moves to a file when they outgrow the inline threshold.
type stateWriter struct {
	ctx    context.Context
	loc    *location
	name   string
	buf    []byte
	w      BlobWriter // nil while inline
	ent    string     // entropy of the file, "" for none
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
	if w.w == nil && w.size+int64(len(p)) > min(w.loc.inline.max, w.loc.inlineLeft.Load()) {
		if err := w.outgrowInline(w.size + int64(len(p))); err != nil {
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
		w.err = fmt.Errorf("write state file %s: %w", w.fileDisplay(), err)
		return n, w.err
	}
	return len(p), nil
}

func (w *stateWriter) handle() StateHandle {
	h := StateHandle{Path: w.name, Size: w.size, CRC: w.crc}
	if w.ent != "" {
		h.Entropy, h.EntropyAt = w.ent, w.loc.entropy.at
	}
	return h
}

func (w *stateWriter) fileDisplay() string {
	if p, err := objectPath(w.loc.store, w.loc.dir, w.handle()); err == nil {
		return w.loc.r.display(p)
	}
	return w.loc.fileDisplay(w.name)
}

// takeInline takes w.size bytes of the location's inline budget; false
// when too few are left.
func (w *stateWriter) takeInline() bool {
	for {
		left := w.loc.inlineLeft.Load()
		if w.size > left {
			return false
		}
		if w.loc.inlineLeft.CompareAndSwap(left, left-w.size) {
			return true
		}
	}
}

// outgrowInline moves inline state of size bytes that no longer may stay
// inline to a file, or fails with jobmanager storage, which has none.
func (w *stateWriter) outgrowInline(size int64) error {
	if !w.loc.inline.must {
		return w.spill()
	}
	if size > w.loc.inline.max {
		w.err = fmt.Errorf("state %s in %s is larger than jobmanager storage's limit of %d bytes; use a filesystem (set execution.checkpointing.dir)", w.name, w.loc.display, w.loc.inline.max)
	} else {
		w.err = fmt.Errorf("state %s in %s: the state of this subtask for this checkpoint is more than jobmanager storage's limit of %d bytes; use a filesystem (set execution.checkpointing.dir)", w.name, w.loc.display, w.loc.inline.budget)
	}
	return w.err
}

// spill creates the file and writes what was buffered.
func (w *stateWriter) spill() error {
	if w.loc.entropy.at >= 0 {
		w.ent = randomEntropy(w.loc.entropy.length)
	}
	p, err := objectPath(w.loc.store, w.loc.dir, w.handle())
	if err == nil {
		w.w, err = w.loc.store.Create(w.ctx, p)
	}
	if err != nil {
		w.err = fmt.Errorf("create state file in %s: %w", w.loc.display, err)
		return w.err
	}
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = fmt.Errorf("write state file %s: %w", w.fileDisplay(), err)
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
	// The inline bytes are taken from the location's budget only now: a
	// writer that spills gives nothing back. A negative threshold: never
	// inline, also empty state.
	if w.w == nil && (w.size > w.loc.inline.max || !w.takeInline()) {
		if err := w.outgrowInline(w.size); err != nil {
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
	if err := w.w.Close(); err != nil {
		return StateHandle{}, fmt.Errorf("close state file %s: %w", w.fileDisplay(), err)
	}
	return w.handle(), nil
}

func (w *stateWriter) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.buf = nil
	if w.w != nil {
		return w.w.Abort()
	}
	return nil
}

// OpenState opens the bytes of h, a handle of the checkpoint or savepoint
// whose directory is locationPath (Metadata.Dir). A missing file, or a size
// that differs from h.Size, is an error at once; a CRC-32C mismatch is an
// error at the end of the data, naming the file. The caller must read to
// io.EOF and fail the restore on any error, discarding what it read. ctx
// bounds opening and reading.
func OpenState(ctx context.Context, locationPath string, h StateHandle) (io.ReadCloser, error) {
	return openSegments(ctx, locationPath, h, 0, []segment{{n: h.Size, crc: h.CRC}})
}

type segment struct {
	n   int64
	crc uint32
}

func openSegments(ctx context.Context, locationPath string, h StateHandle, off int64, segs []segment) (io.ReadCloser, error) {
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
	r, err := resolve(locationPath)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	p, err := objectPath(r.store, r.native, h)
	if err != nil {
		return nil, fmt.Errorf("open state in %s: %w", locationPath, err)
	}
	name := r.display(p)
	rc, size, err := r.store.Open(ctx, p, off)
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
func LoadMetadata(ctx context.Context, path string) (*Metadata, error) {
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
	m, err := loadMetadataAt(ctx, r, dir)
	if err != nil {
		if ns, ok := err.(*notSnapshotError); ok {
			return nil, &notSnapshotError{path: path, why: ns.why}
		}
		return nil, err
	}
	m.Dir = r.display(dir)
	return m, nil
}

// missingMetadata says why dir holds no _metadata. A file system has
// directories, so a path that is not there at all (a typo, a savepoint
// disposed already) is told apart from a directory that is not a
// checkpoint; an object store has only the missing object to go by.
func missingMetadata(st Store, dir string) string {
	if _, ok := st.(*fsStore); ok {
		switch fi, err := os.Stat(dir); {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return "does not exist"
		case err == nil && !fi.IsDir():
			return "not a directory"
		}
	}
	return "no _metadata"
}

// maxMetadataSize bounds what LoadMetadata reads: metadata holds handles,
// not state (Flink caps a checkpoint's inline state well below this).
const maxMetadataSize = 1 << 30

// loadMetadataAt reads dir/_metadata; a missing one is a
// *notSnapshotError without a path.
func loadMetadataAt(ctx context.Context, r resolved, dir string) (*Metadata, error) {
	file := r.store.Join(dir, MetadataFileName)
	rc, size, err := r.store.Open(ctx, file, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &notSnapshotError{why: missingMetadata(r.store, dir)}
		}
		return nil, fmt.Errorf("load metadata %s: %w", r.display(file), err)
	}
	defer func() { _ = rc.Close() }()
	if size > maxMetadataSize {
		return nil, corruptf("%s: _metadata of %d bytes is larger than the limit of %d bytes", r.display(file), size, maxMetadataSize)
	}
	b, err := io.ReadAll(io.LimitReader(rc, size))
	if err != nil {
		return nil, fmt.Errorf("load metadata %s: %w", r.display(file), err)
	}
	m, err := DecodeMetadata(b)
	if err != nil {
		if ns, ok := err.(*notSnapshotError); ok {
			return nil, ns
		}
		if ce, ok := err.(*corruptError); ok {
			return nil, &corruptError{r.display(file) + ": " + ce.msg}
		}
		return nil, fmt.Errorf("%s: %w", r.display(file), err)
	}
	return m, nil
}

// DisposeSavepoint deletes a savepoint: its _metadata (first, so that a
// half-deleted savepoint is never mistaken for one), the state files it
// references, then the directory if nothing else is in it. It refuses a
// path without a valid _metadata and a checkpoint's directory.
func DisposeSavepoint(ctx context.Context, path string) error {
	m, err := LoadMetadata(ctx, path)
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
	if err := r.store.Remove(ctx, r.store.Join(r.native, MetadataFileName)); err != nil {
		return fmt.Errorf("dispose savepoint %s: %w", m.Dir, err)
	}
	// Validated handles: base names inside the directory (or its entropy
	// twin, for a retained checkpoint used as a savepoint: never here).
	err = r.store.Remove(ctx, objectPaths(r.store, r.native, m.Operators, false)...)
	if err == nil {
		err = r.store.RemoveDirIfEmpty(ctx, r.native)
	}
	if err != nil {
		return fmt.Errorf("dispose savepoint %s: _metadata deleted, but: %w", m.Dir, err)
	}
	return nil
}
