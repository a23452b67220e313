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
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/state"
)

// ctx is the context of the storage calls of tests that need no deadline.
var ctx = context.Background()

func mustOpen(t *testing.T, uri string, o Options) Storage {
	t.Helper()
	s, err := OpenWithOptions(uri, zap.NewNop(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeState writes data as one state file and returns its handle.
func writeState(t *testing.T, loc Location, name string, data []byte) StateHandle {
	t.Helper()
	w, err := loc.CreateStateFile(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	h, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func readState(locationPath string, h StateHandle) ([]byte, error) {
	rc, err := OpenState(ctx, locationPath, h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// oneOperator is metadata with the given handles as operator state of one
// subtask.
func oneOperator(jobID string, id int64, savepoint bool, hs ...StateHandle) *Metadata {
	var objs []StateObject
	for _, h := range hs {
		objs = append(objs, StateObject{Kind: KindOperator, StateHandle: h})
	}
	return &Metadata{JobID: jobID, JobName: "j", CheckpointID: id, Savepoint: savepoint, MaxParallelism: 4,
		Operators: []OperatorState{{ID: "op", Type: "map", Parallelism: 1, Subtasks: []SubtaskState{{Subtask: 0, State: objs}}}}}
}

// listTree returns the files under dir, relative, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

var big = bytes.Repeat([]byte("0123456789abcdef"), 2000) // 32000 bytes, above the inline threshold

func TestFileCheckpointRoundTrip(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct{ uri, dir, want string }{
		{"file://" + root + "/uri", root + "/uri", "file://" + root + "/uri/job1/chk-7"},
		{root + "/plain", root + "/plain", root + "/plain/job1/chk-7"},
	} {
		s := mustOpen(t, c.uri, Options{})
		if err := s.Validate(ctx, "job1"); err != nil {
			t.Fatal(err)
		}
		loc, err := s.CheckpointLocation("job1", 7)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Path() != c.want {
			t.Fatalf("Path %q, want %q", loc.Path(), c.want)
		}
		// A TaskManager resolves the pointer it was sent and writes there.
		tmLoc, err := mustOpen(t, c.uri, Options{}).ResolveLocation(loc.Path())
		if err != nil || tmLoc.Path() != c.want {
			t.Fatalf("ResolveLocation: %v, %v", tmLoc, err)
		}
		large := writeState(t, tmLoc, "op/0 (a)", big)
		small := writeState(t, tmLoc, "op-1", []byte("small"))
		if !regexp.MustCompile(`^op_0__a_-[0-9a-f]{16}$`).MatchString(large.Path) || large.Size != int64(len(big)) ||
			large.CRC != crc32.Checksum(big, castagnoli) || large.Inline != nil {
			t.Fatalf("large handle %+v", large)
		}
		if !reflect.DeepEqual(small, StateHandle{Size: 5, CRC: crc32.Checksum([]byte("small"), castagnoli), Inline: []byte("small")}) {
			t.Fatalf("small handle %+v", small)
		}
		m := oneOperator("job1", 7, false, large, small)
		size, err := loc.WriteMetadata(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := EncodeMetadata(m)
		if size != int64(len(enc)) {
			t.Fatalf("size %d, want %d", size, len(enc))
		}
		if got := listTree(t, c.dir); !reflect.DeepEqual(got, []string{"./", "job1/", "job1/chk-7/", "job1/chk-7/" + MetadataFileName, "job1/chk-7/" + large.Path}) {
			t.Fatalf("files %q", got)
		}
		for _, p := range []string{loc.Path(), loc.Path() + "/_metadata"} {
			got, err := LoadMetadata(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if got.Dir != c.want {
				t.Fatalf("Dir %q, want %q", got.Dir, c.want)
			}
			m.Dir = got.Dir
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("loaded %+v\nwant %+v", got, m)
			}
			for i, want := range [][]byte{big, []byte("small")} {
				b, err := readState(got.Dir, got.Operators[0].Subtasks[0].State[i].StateHandle)
				if err != nil || !bytes.Equal(b, want) {
					t.Fatalf("state %d: %d bytes, %v", i, len(b), err)
				}
			}
		}
		// _metadata is never overwritten.
		if _, err := loc.WriteMetadata(ctx, m); err == nil || !strings.Contains(err.Error(), "_metadata exists already; refusing to overwrite it") {
			t.Fatalf("second WriteMetadata: %v", err)
		}
	}
}

func TestRelocation(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root, Options{FileInlineThreshold: -1})
	loc, _ := s.CheckpointLocation("job1", 3)
	h1 := writeState(t, loc, "a", []byte("alpha"))
	h2 := writeState(t, loc, "b", nil)
	if h1.Inline != nil || h2.Path == "" {
		t.Fatalf("want files: %+v %+v", h1, h2)
	}
	if _, err := loc.WriteMetadata(ctx, oneOperator("job1", 3, false, h1, h2)); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(filepath.Join(root, "job1", "chk-3"), moved); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMetadata(ctx, "file://"+moved)
	if err != nil {
		t.Fatal(err)
	}
	if m.Dir != "file://"+moved {
		t.Fatalf("Dir %q", m.Dir)
	}
	for i, want := range []string{"alpha", ""} {
		b, err := readState(m.Dir, m.Operators[0].Subtasks[0].State[i].StateHandle)
		if err != nil || string(b) != want {
			t.Fatalf("state %d = %q, %v", i, b, err)
		}
	}
}

func TestStateCorruptionDetected(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{FileInlineThreshold: -1})
	loc, _ := s.CheckpointLocation("job1", 1)
	h := writeState(t, loc, "s", []byte("hello state"))
	file := filepath.Join(loc.Path(), h.Path)

	flipped := []byte("hello statf")
	if err := os.WriteFile(file, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readState(loc.Path(), h)
	want := "checksum mismatch in state file " + file + ": CRC-32C"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped: %v, want %q...", err, want)
	}

	if err := os.WriteFile(file, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readState(loc.Path(), h)
	if want := "state file " + file + " has 5 bytes, the metadata says 11 (truncated or corrupt)"; err == nil || err.Error() != want {
		t.Fatalf("truncated: %v, want %q", err, want)
	}

	_ = os.Remove(file)
	_, err = readState(loc.Path(), h)
	if want := "state file " + file + " is missing: open " + file + ": no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("missing: %v, want %q", err, want)
	}

	// Inline state is checked too.
	bad := StateHandle{Size: 2, CRC: 1, Inline: []byte("hi")}
	if _, err := readState(loc.Path(), bad); err == nil || !strings.HasPrefix(err.Error(), "checksum mismatch in state file inline state in "+loc.Path()) {
		t.Fatalf("inline: %v", err)
	}
	// A handle pointing outside the directory is refused.
	if _, err := readState(loc.Path(), StateHandle{Path: "../chk-0/x", Size: 1}); err == nil ||
		err.Error() != "open state in "+loc.Path()+`: state file path "../chk-0/x" is not a file name inside the checkpoint directory` {
		t.Fatalf("escape: %v", err)
	}
}

func TestDisposeDeletesOnlyThatCheckpoint(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root, Options{FileInlineThreshold: -1})
	for _, id := range []int64{1, 10, 11} {
		loc, _ := s.CheckpointLocation("job1", id)
		h := writeState(t, loc, "s", []byte("x"))
		if _, err := loc.WriteMetadata(ctx, oneOperator("job1", id, false, h)); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := s.CheckpointLocation("job2", 1)
	writeState(t, other, "s", []byte("y"))
	before := listTree(t, root)

	loc, _ := s.CheckpointLocation("job1", 1)
	if err := loc.Dispose(ctx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range before {
		if !strings.HasPrefix(f, "job1/chk-1/") {
			want = append(want, f)
		}
	}
	if got := listTree(t, root); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Dispose:\n got %q\nwant %q", got, want)
	}
	// Disposing again, or a checkpoint never written, is fine.
	if err := loc.Dispose(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSavepoints(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, filepath.Join(root, "checkpoints"), Options{FileInlineThreshold: -1})
	spDir := filepath.Join(root, "savepoints")
	loc, err := s.SavepointLocation(ctx, spDir, "a1b2c3d4e5f6")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(spDir) + `/savepoint-a1b2c3-[0-9a-f]{12}$`).MatchString(loc.Path()) {
		t.Fatalf("savepoint path %q", loc.Path())
	}
	h := writeState(t, loc, "s", []byte("state"))
	if _, err := loc.WriteMetadata(ctx, oneOperator("a1b2c3d4e5f6", 4, false, h)); err == nil ||
		err.Error() != "write _metadata of "+loc.Path()+": metadata says savepoint=false, the location is a savepoint" {
		t.Fatalf("checkpoint metadata in a savepoint: %v", err)
	}
	if _, err := loc.WriteMetadata(ctx, oneOperator("a1b2c3d4e5f6", 4, true, h)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SavepointLocation(ctx, "", "job"); err == nil ||
		err.Error() != "no savepoint directory: give a target directory or set execution.checkpointing.savepoint-dir" {
		t.Fatalf("no dir: %v", err)
	}

	// A checkpoint and a plain directory are refused and left alone.
	cp, _ := s.CheckpointLocation("job1", 9)
	if _, err := cp.WriteMetadata(ctx, oneOperator("job1", 9, false, writeState(t, cp, "s", []byte("c")))); err != nil {
		t.Fatal(err)
	}
	if err := DisposeSavepoint(ctx, cp.Path()); err == nil ||
		err.Error() != "dispose savepoint: "+cp.Path()+" holds checkpoint 9 of job job1, not a savepoint; refusing to delete it" {
		t.Fatalf("checkpoint: %v", err)
	}
	plain := filepath.Join(root, "plain")
	_ = os.MkdirAll(plain, 0o755)
	_ = os.WriteFile(filepath.Join(plain, "keep"), []byte("k"), 0o644)
	if err := DisposeSavepoint(ctx, plain); err == nil ||
		err.Error() != "dispose savepoint: not a weir checkpoint or savepoint: "+plain+": no _metadata" {
		t.Fatalf("plain: %v", err)
	}
	before := listTree(t, root)

	if err := DisposeSavepoint(ctx, loc.Path()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range before {
		if !strings.HasPrefix(f, "savepoints/savepoint-") {
			want = append(want, f)
		}
	}
	if got := listTree(t, root); !reflect.DeepEqual(got, want) {
		t.Fatalf("after DisposeSavepoint:\n got %q\nwant %q", got, want)
	}

	// Files it does not reference survive, and so does the directory.
	loc2, _ := s.SavepointLocation(ctx, spDir, "a1b2c3d4e5f6")
	h2 := writeState(t, loc2, "s", []byte("state"))
	_, _ = loc2.WriteMetadata(ctx, oneOperator("a1b2c3d4e5f6", 5, true, h2))
	_ = os.WriteFile(filepath.Join(loc2.Path(), "notes.txt"), nil, 0o644)
	if err := DisposeSavepoint(ctx, filepath.Join(loc2.Path(), MetadataFileName)); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, loc2.Path()); !reflect.DeepEqual(got, []string{"./", "notes.txt"}) {
		t.Fatalf("left %q", got)
	}
}

func TestValidateStorage(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root, Options{})
	if err := s.Validate(ctx, "job1"); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, root); !reflect.DeepEqual(got, []string{"./", "job1/"}) {
		t.Fatalf("probe left behind: %q", got)
	}
	file := filepath.Join(root, "file")
	_ = os.WriteFile(file, nil, 0o644)
	s = mustOpen(t, "file://"+file+"/sub", Options{})
	err := s.Validate(ctx, "job1")
	want := "checkpoint directory file://" + file + "/sub/job1 is not usable: mkdir " + file + ": not a directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if err := s.Validate(ctx, "../x"); err == nil || err.Error() != `job id "../x" cannot name a directory` {
		t.Fatalf("job id: %v", err)
	}
}

func TestOpenURIs(t *testing.T) {
	wd, _ := os.Getwd()
	for _, c := range []struct{ uri, path, err string }{
		{uri: "./cp", path: filepath.Join(wd, "cp") + "/j/chk-1"},
		{uri: "file://localhost/var/cp/", path: "file:///var/cp/j/chk-1"},
		{uri: "jobmanager", path: "jobmanager://j/chk-1"},
		{uri: "hdfs:///cp", err: `checkpoint storage: unsupported storage scheme "hdfs" in "hdfs:///cp" (supported: ` + SupportedSchemes() + `)`},
		{uri: "file://host/cp", err: `checkpoint storage: file URI "file://host/cp" names host "host": only local paths (file:///path) are supported`},
		{uri: "jobmanager://x", err: `checkpoint storage "jobmanager://x": use plain "jobmanager"`},
		{uri: "", err: "checkpoint storage: empty path"},
	} {
		s, err := Open(c.uri, nil)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("Open(%q) = %v, want %q", c.uri, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		loc, err := s.CheckpointLocation("j", 1)
		if err != nil || loc.Path() != c.path {
			t.Errorf("Open(%q): path %q, %v; want %q", c.uri, loc.Path(), err, c.path)
		}
	}
}

func TestJobManagerStorage(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s, err := OpenWithOptions("jobmanager", zap.New(core), Options{JobManagerMaxStateSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 1 || !strings.Contains(logs.All()[0].Message, "not for production") {
		t.Fatalf("warning: %v", logs.All())
	}
	if err := s.Validate(ctx, "jmjob"); err != nil {
		t.Fatal(err)
	}
	loc, _ := s.CheckpointLocation("jmjob", 3)
	if loc.Path() != "jobmanager://jmjob/chk-3" {
		t.Fatalf("path %q", loc.Path())
	}
	tm, _ := s.ResolveLocation(loc.Path())
	h := writeState(t, tm, "op-0", []byte("12345678"))
	if !reflect.DeepEqual(h, StateHandle{Size: 8, CRC: crc32.Checksum([]byte("12345678"), castagnoli), Inline: []byte("12345678")}) {
		t.Fatalf("handle %+v", h)
	}
	w, _ := tm.CreateStateFile(ctx, "op-1")
	_, err = w.Write([]byte("123456789"))
	if err == nil || !regexp.MustCompile(`^state op-1-[0-9a-f]{16} in jobmanager://jmjob/chk-3 is larger than jobmanager storage's limit of 8 bytes; use a filesystem \(set execution.checkpointing.dir\)$`).MatchString(err.Error()) {
		t.Fatalf("limit: %v", err)
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("Close after a failed Write succeeded")
	}
	// The limit is for all the state of the location (one subtask's
	// acknowledgement): op-0 used it up.
	w, _ = tm.CreateStateFile(ctx, "op-2")
	_, err = w.Write([]byte("x"))
	if err == nil || !regexp.MustCompile(`^state op-2-[0-9a-f]{16} in jobmanager://jmjob/chk-3: the state of this subtask for this checkpoint is more than jobmanager storage's limit of 8 bytes; use a filesystem \(set execution.checkpointing.dir\)$`).MatchString(err.Error()) {
		t.Fatalf("limit of the location: %v", err)
	}
	_ = w.Abort()
	m := oneOperator("jmjob", 3, false, h)
	if _, err := loc.WriteMetadata(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMetadata(ctx, "jobmanager://jmjob/chk-3")
	if err != nil {
		t.Fatal(err)
	}
	m.Dir = "jobmanager://jmjob/chk-3"
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("loaded %+v", got)
	}
	if b, err := readState(got.Dir, got.Operators[0].Subtasks[0].State[0].StateHandle); err != nil || string(b) != "12345678" {
		t.Fatalf("state %q %v", b, err)
	}
	if err := loc.Dispose(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMetadata(ctx, loc.Path()); err == nil || err.Error() != "not a weir checkpoint or savepoint: jobmanager://jmjob/chk-3: no _metadata" {
		t.Fatalf("after Dispose: %v", err)
	}

	// Savepoints go to a directory, with the state inline in _metadata.
	dir := t.TempDir()
	sp, err := s.SavepointLocation(ctx, dir, "jmjob")
	if err != nil {
		t.Fatal(err)
	}
	h = writeState(t, sp, "op-0", []byte("abc"))
	if _, err := sp.WriteMetadata(ctx, oneOperator("jmjob", 4, true, h)); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, sp.Path()); !reflect.DeepEqual(got, []string{"./", MetadataFileName}) {
		t.Fatalf("savepoint files %q", got)
	}
	if err := DisposeSavepoint(ctx, sp.Path()); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, dir); !reflect.DeepEqual(got, []string{"./"}) {
		t.Fatalf("after dispose %q", got)
	}
	if _, err := s.SavepointLocation(ctx, "jobmanager://x", "jmjob"); err == nil ||
		err.Error() != `savepoint directory "jobmanager://x": savepoints must go to a durable directory` {
		t.Fatalf("jobmanager savepoint dir: %v", err)
	}
}

// failingFile fails every write with ENOSPC once limit bytes were written.
type failingFile struct {
	f     *os.File
	limit int
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n, _ := f.f.Write(p[:f.limit])
		f.limit = 0
		return n, syscall.ENOSPC
	}
	f.limit -= len(p)
	return f.f.Write(p)
}
func (f *failingFile) Sync() error  { return f.f.Sync() }
func (f *failingFile) Close() error { return f.f.Close() }

// diskFull makes the filesystem driver fail writes after limit bytes per
// file until the test ends. Tests using it must not run in parallel.
func diskFull(t *testing.T, limit int) {
	orig := defaultFS.createFile
	defaultFS.createFile = func(name string) (osFile, error) {
		f, err := orig(name)
		if err != nil {
			return nil, err
		}
		return &failingFile{f: f.(*os.File), limit: limit}, nil
	}
	t.Cleanup(func() { defaultFS.createFile = orig })
}

func TestWriteErrorsNameThePath(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root, Options{FileInlineThreshold: -1})
	good, _ := s.CheckpointLocation("job1", 1)
	if _, err := good.WriteMetadata(ctx, oneOperator("job1", 1, false, writeState(t, good, "s", []byte("ok")))); err != nil {
		t.Fatal(err)
	}
	diskFull(t, 10)

	loc, _ := s.CheckpointLocation("job1", 2)
	w, _ := loc.CreateStateFile(ctx, "op-0")
	_, err := w.Write(bytes.Repeat(big, 3)) // larger than the write buffer: fails now
	re := regexp.MustCompile(`^write state file ` + regexp.QuoteMeta(loc.Path()) + `/op-0-[0-9a-f]{16}: no space left on device$`)
	if err == nil || !re.MatchString(err.Error()) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write: %v", err)
	}
	if _, err := w.Close(); err == nil || !re.MatchString(err.Error()) {
		t.Fatalf("Close: %v", err)
	}
	w, _ = loc.CreateStateFile(ctx, "op-1")
	_, _ = w.Write([]byte("more than ten bytes")) // buffered: fails at Close
	if _, err := w.Close(); err == nil || !regexp.MustCompile(`^close state file `+regexp.QuoteMeta(loc.Path())+`/op-1-[0-9a-f]{16}: no space left on device$`).MatchString(err.Error()) {
		t.Fatalf("Close: %v", err)
	}

	_, err = loc.WriteMetadata(ctx, oneOperator("job1", 2, false, StateHandle{Size: 0, Inline: []byte{}}))
	re = regexp.MustCompile(`^write _metadata of ` + regexp.QuoteMeta(loc.Path()) + `: write ` + regexp.QuoteMeta(loc.Path()) + `/_metadata.inprogress-[0-9a-f]{16}: no space left on device$`)
	if err == nil || !re.MatchString(err.Error()) {
		t.Fatalf("WriteMetadata: %v", err)
	}
	// Nothing half-written is left, and the older checkpoint is intact.
	if got := listTree(t, loc.Path()); !reflect.DeepEqual(got, []string{"./"}) {
		t.Fatalf("left behind: %q", got)
	}
	if _, err := LoadMetadata(ctx, good.Path()); err != nil {
		t.Fatal(err)
	}
}

func TestKeyGroups(t *testing.T) {
	for _, threshold := range []int{-1, 1 << 20} { // a file, and inline
		s := mustOpen(t, t.TempDir(), Options{FileInlineThreshold: threshold})
		loc, _ := s.CheckpointLocation("job1", 1)
		w, _ := loc.CreateStateFile(ctx, "agg-0")
		kw := NewKeyGroupWriter(w, state.KeyGroupRange{Start: 2, End: 7})
		groups := map[int]string{3: "three", 4: "four!", 7: "seven"}
		for _, g := range []int{3, 4, 7} {
			if err := kw.StartKeyGroup(g); err != nil {
				t.Fatal(err)
			}
			_, _ = kw.Write([]byte(groups[g]))
		}
		if err := kw.StartKeyGroup(5); err == nil || err.Error() != "start key group 5: want one in [8-7] after 7" {
			t.Fatalf("out of order: %v", err)
		}
		o, err := kw.Close()
		if err != nil {
			t.Fatal(err)
		}
		c := func(s string) uint32 { return crc32.Checksum([]byte(s), castagnoli) }
		want := &KeyGroupRangeOffsets{Start: 2, End: 7, Offsets: []int64{0, 0, 5, 10, 10, 10}, CRCs: []uint32{0, c("three"), c("four!"), 0, 0, c("seven")}}
		if o.Kind != KindKeyed || !reflect.DeepEqual(o.KeyGroups, want) || o.Size != 15 || o.IsInline() != (threshold > 0) {
			t.Fatalf("object %+v %+v", o, o.KeyGroups)
		}
		read := func(r state.KeyGroupRange) (string, error) {
			rc, err := OpenKeyGroups(ctx, loc.Path(), o, r)
			if err != nil {
				return "", err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			return string(b), err
		}
		for _, c := range []struct {
			r    state.KeyGroupRange
			want string
		}{
			{state.KeyGroupRange{Start: 0, End: 127}, "threefour!seven"},
			{state.KeyGroupRange{Start: 4, End: 6}, "four!"},
			{state.KeyGroupRange{Start: 5, End: 6}, ""},
			{state.KeyGroupRange{Start: 7, End: 9}, "seven"},
			{state.KeyGroupRange{Start: 8, End: 9}, ""},
		} {
			if got, err := read(c.r); err != nil || got != c.want {
				t.Fatalf("read %s = %q, %v; want %q", c.r, got, err, c.want)
			}
		}
		if threshold > 0 {
			continue
		}
		// Damage key group 7: reading 2-4 still works, reading 7 fails.
		file := filepath.Join(loc.Path(), o.Path)
		_ = os.WriteFile(file, []byte("threefour!sevem"), 0o644)
		if got, err := read(state.KeyGroupRange{Start: 2, End: 4}); err != nil || got != "threefour!" {
			t.Fatalf("undamaged groups: %q %v", got, err)
		}
		if _, err := read(state.KeyGroupRange{Start: 6, End: 7}); err == nil || !strings.HasPrefix(err.Error(), "checksum mismatch in state file "+file) {
			t.Fatalf("damaged group: %v", err)
		}
	}
}

func BenchmarkStateWrite(b *testing.B) {
	s := mustOpenB(b, b.TempDir())
	loc, _ := s.CheckpointLocation("job1", 1)
	w, _ := loc.CreateStateFile(ctx, "bench")
	kw := NewKeyGroupWriter(w, state.KeyGroupRange{Start: 0, End: 0})
	_ = kw.StartKeyGroup(0)
	entry := bytes.Repeat([]byte("k"), 100)
	b.SetBytes(int64(len(entry)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kw.Write(entry); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := kw.Close(); err != nil {
		b.Fatal(err)
	}
}

func mustOpenB(b *testing.B, dir string) Storage {
	s, err := OpenWithOptions(dir, nil, Options{FileInlineThreshold: -1})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// However many pieces of state one location (one subtask's
// acknowledgement) gets, at most MaxInlinePerLocation bytes of them stay
// inline; the others become files, each piece whole. A piece above the
// threshold is a file; the threshold 0 (config) inlines nothing.
func TestInlineBudgetPerLocation(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root, Options{FileInlineThreshold: 20 << 10})
	loc, err := s.CheckpointLocation("j", 1)
	if err != nil {
		t.Fatal(err)
	}
	piece := bytes.Repeat([]byte{'s'}, 20<<10)
	inline, files := 0, 0
	for i := range 60 {
		h := writeState(t, loc, fmt.Sprintf("op-%d", i), piece)
		if h.IsInline() {
			inline++
			if files > 0 {
				t.Fatalf("piece %d inline after a piece went to a file", i)
			}
		} else {
			files++
		}
		if b, err := readState(loc.Path(), h); err != nil || !bytes.Equal(b, piece) {
			t.Fatalf("piece %d: %d bytes, %v", i, len(b), err)
		}
	}
	if want := MaxInlinePerLocation / (20 << 10); inline != want || files != 60-want {
		t.Fatalf("%d pieces inline and %d in files, want %d and %d", inline, files, want, 60-want)
	}
	// Another location has a budget of its own.
	other, _ := s.CheckpointLocation("j", 2)
	if h := writeState(t, other, "op", piece); !h.IsInline() {
		t.Fatal("first piece of another location is not inline")
	}
	if h := writeState(t, other, "big", append(piece, 'x')); h.IsInline() {
		t.Fatal("a piece above the threshold is inline")
	}

	if o := StorageOptions(config.New()); o.FileInlineThreshold != 20<<10 {
		t.Fatalf("default threshold %d", o.FileInlineThreshold)
	}
	cfg, _, err := config.New().With(map[string]string{"state.storage.fs.memory-threshold": "0"})
	if err != nil {
		t.Fatal(err)
	}
	none := mustOpen(t, root, StorageOptions(cfg))
	loc3, _ := none.CheckpointLocation("j", 3)
	if h := writeState(t, loc3, "tiny", []byte("t")); h.IsInline() {
		t.Fatal("inline with data-inline-threshold 0")
	}
}
