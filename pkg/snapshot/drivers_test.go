package snapshot_test

// The storage tests that every driver must pass: the same table, run on the
// filesystem and on S3 (a real MinIO server per test, through the s3
// driver). Driver-specific tests live with the driver (fs: storage_test.go;
// S3: package s3).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/minio/minio-go/v7"

	"github.com/weirstream/weir/pkg/internal/miniotest"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/snapshot/s3"
	"github.com/weirstream/weir/pkg/state"
)

// backend is one driver under test, with a fresh root directory and ways to
// look at and damage what it stores behind the driver's back.
type backend struct {
	name string
	root string // pointer of a fresh, empty directory
	// list returns the objects (files) under the directory dir (a pointer
	// under root), relative to it, sorted.
	list func(dir string) []string
	// put replaces (or creates) the object at pointer p; del deletes it.
	put func(p string, data []byte)
	del func(p string)
	// move moves everything under dir to a new directory and returns it.
	move func(dir string) string
	// uploads lists unfinished uploads under root (S3 multipart).
	uploads func() []string
}

// forEachDriver runs f once per driver, each in a subtest.
func forEachDriver(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("file", func(t *testing.T) { f(t, fileBackend(t)) })
	t.Run("s3", func(t *testing.T) { f(t, s3Backend(t)) })
}

func fileBackend(t *testing.T) *backend {
	root := t.TempDir()
	return &backend{
		name: "file", root: root,
		list: func(dir string) []string {
			var out []string
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					out = append(out, filepath.ToSlash(rel))
				}
				return nil
			})
			slices.Sort(out)
			return out
		},
		put: func(p string, data []byte) {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		del: func(p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		},
		move: func(dir string) string {
			to := filepath.Join(t.TempDir(), "moved")
			if err := os.Rename(dir, to); err != nil {
				t.Fatal(err)
			}
			return to
		},
		uploads: func() []string { return nil },
	}
}

func s3Backend(t *testing.T) *backend {
	srv := miniotest.Start(t)
	d, err := s3.New(s3.Config{
		Endpoint: srv.URL, AccessKey: s3.Secret(srv.AccessKey), SecretKey: s3.Secret(srv.SecretKey),
		Region: "us-east-1", PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	snapshot.Register(s3.Scheme, d)
	cl := srv.Client()
	key := func(p string) string {
		k, ok := strings.CutPrefix(p, "s3://"+srv.Bucket+"/")
		if !ok {
			t.Fatalf("%s is not in bucket %s", p, srv.Bucket)
		}
		return k
	}
	b := &backend{
		name: "s3", root: "s3://" + srv.Bucket + "/root",
		list: func(dir string) []string {
			prefix := key(dir) + "/"
			var out []string
			for _, k := range srv.Objects(srv.Bucket, prefix) {
				out = append(out, strings.TrimPrefix(k, prefix))
			}
			return out
		},
		put: func(p string, data []byte) {
			if _, err := cl.PutObject(t.Context(), srv.Bucket, key(p), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		del: func(p string) {
			if err := cl.RemoveObject(t.Context(), srv.Bucket, key(p), minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		uploads: func() []string { return srv.Uploads(srv.Bucket, "") },
	}
	b.move = func(dir string) string {
		to := "s3://" + srv.Bucket + "/moved"
		for _, rel := range b.list(dir) {
			src := minio.CopySrcOptions{Bucket: srv.Bucket, Object: key(dir) + "/" + rel}
			if _, err := cl.CopyObject(t.Context(), minio.CopyDestOptions{Bucket: srv.Bucket, Object: key(to) + "/" + rel}, src); err != nil {
				t.Fatal(err)
			}
			b.del(dir + "/" + rel)
		}
		return to
	}
	return b
}

func open(t *testing.T, uri string, o snapshot.Options) snapshot.Storage {
	t.Helper()
	s, err := snapshot.OpenWithOptions(uri, zap.NewNop(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, loc snapshot.Location, name string, data []byte) snapshot.StateHandle {
	t.Helper()
	w, err := loc.CreateStateFile(t.Context(), name)
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

func read(t *testing.T, dir string, h snapshot.StateHandle) ([]byte, error) {
	rc, err := snapshot.OpenState(t.Context(), dir, h)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	return io.ReadAll(rc)
}

func operator(job string, id int64, savepoint bool, hs ...snapshot.StateHandle) *snapshot.Metadata {
	var objs []snapshot.StateObject
	for _, h := range hs {
		objs = append(objs, snapshot.StateObject{Kind: snapshot.KindOperator, StateHandle: h})
	}
	return &snapshot.Metadata{JobID: job, JobName: "j", CheckpointID: id, Savepoint: savepoint, MaxParallelism: 4,
		Operators: []snapshot.OperatorState{{ID: "op", Type: "map", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: objs}}}}}
}

// A checkpoint written by TaskManagers and committed by the JobManager
// reads back exactly; small state is inline, large state a file, state
// larger than an upload part a multipart upload; _metadata is written
// once; the probe of Validate leaves nothing.
func TestDriverCheckpointRoundTrip(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		s := open(t, b.root, snapshot.Options{})
		if err := s.Validate(ctx, "job1"); err != nil {
			t.Fatal(err)
		}
		if got := b.list(b.root); len(got) != 0 {
			t.Fatalf("Validate left %q", got)
		}
		loc, err := s.CheckpointLocation("job1", 7)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.root + "/job1/chk-7"; loc.Path() != want {
			t.Fatalf("Path %q, want %q", loc.Path(), want)
		}
		tm, err := open(t, b.root, snapshot.Options{}).ResolveLocation(loc.Path())
		if err != nil || tm.Path() != loc.Path() {
			t.Fatalf("ResolveLocation: %v, %v", tm, err)
		}
		large := bytes.Repeat([]byte("0123456789abcdef"), 2000)
		huge := bytes.Repeat([]byte("weir"), (s3.PartSize+1000)/4) // two upload parts
		hl, hs, hh := write(t, tm, "op/0 (a)", large), write(t, tm, "op-1", []byte("small")), write(t, tm, "op-2", huge)
		if !regexp.MustCompile(`^op_0__a_-[0-9a-f]{16}$`).MatchString(hl.Path) || hl.Inline != nil || hh.Size != int64(len(huge)) {
			t.Fatalf("handles %+v %+v", hl, hh)
		}
		if hs.Path != "" || string(hs.Inline) != "small" {
			t.Fatalf("small handle %+v", hs)
		}
		m := operator("job1", 7, false, hl, hs, hh)
		if _, err := loc.WriteMetadata(ctx, m); err != nil {
			t.Fatal(err)
		}
		if got, want := b.list(b.root), slices.Sorted(slices.Values([]string{"job1/chk-7/_metadata", "job1/chk-7/" + hl.Path, "job1/chk-7/" + hh.Path})); !reflect.DeepEqual(got, want) {
			t.Fatalf("objects %q, want %q", got, want)
		}
		if got := b.uploads(); len(got) != 0 {
			t.Fatalf("unfinished uploads %q", got)
		}
		for _, p := range []string{loc.Path(), loc.Path() + "/_metadata"} {
			got, err := snapshot.LoadMetadata(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			m.Dir = loc.Path()
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("loaded %+v\nwant %+v", got, m)
			}
			for i, want := range [][]byte{large, []byte("small"), huge} {
				if b, err := read(t, got.Dir, got.Operators[0].Subtasks[0].State[i].StateHandle); err != nil || !bytes.Equal(b, want) {
					t.Fatalf("state %d: %d bytes, %v", i, len(b), err)
				}
			}
		}
		_, err = loc.WriteMetadata(ctx, m)
		if want := "write _metadata of " + loc.Path() + ": " + loc.Path() + "/_metadata exists already; refusing to overwrite it"; err == nil || err.Error() != want || !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second WriteMetadata: %v\nwant %s", err, want)
		}
	})
}

// A checkpoint moved elsewhere restores from its new place.
func TestDriverRelocation(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		loc, _ := open(t, b.root, snapshot.Options{FileInlineThreshold: -1}).CheckpointLocation("job1", 3)
		h1, h2 := write(t, loc, "a", []byte("alpha")), write(t, loc, "b", nil)
		if _, err := loc.WriteMetadata(t.Context(), operator("job1", 3, false, h1, h2)); err != nil {
			t.Fatal(err)
		}
		moved := b.move(loc.Path())
		m, err := snapshot.LoadMetadata(t.Context(), moved)
		if err != nil {
			t.Fatal(err)
		}
		if m.Dir != moved {
			t.Fatalf("Dir %q, want %q", m.Dir, moved)
		}
		for i, want := range []string{"alpha", ""} {
			if got, err := read(t, m.Dir, m.Operators[0].Subtasks[0].State[i].StateHandle); err != nil || string(got) != want {
				t.Fatalf("state %d = %q, %v", i, got, err)
			}
		}
	})
}

// Damaged, truncated and missing state files are errors naming the file.
func TestDriverStateCorruptionDetected(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		loc, _ := open(t, b.root, snapshot.Options{FileInlineThreshold: -1}).CheckpointLocation("job1", 1)
		h := write(t, loc, "s", []byte("hello state"))
		file := loc.Path() + "/" + h.Path

		b.put(file, []byte("hello statf"))
		_, err := read(t, loc.Path(), h)
		if want := "checksum mismatch in state file " + file + ": CRC-32C"; err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, snapshot.ErrCorrupt) {
			t.Fatalf("flipped: %v, want %q...", err, want)
		}
		b.put(file, []byte("hello"))
		_, err = read(t, loc.Path(), h)
		if want := "state file " + file + " has 5 bytes, the metadata says 11 (truncated or corrupt)"; err == nil || err.Error() != want {
			t.Fatalf("truncated: %v, want %q", err, want)
		}
		b.del(file)
		_, err = read(t, loc.Path(), h)
		if want := "state file " + file + " is missing: "; err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("missing: %v, want %q...", err, want)
		}
	})
}

// Dispose deletes one checkpoint and nothing else, and may be repeated.
func TestDriverDisposeDeletesOnlyThatCheckpoint(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := open(t, b.root, snapshot.Options{FileInlineThreshold: -1})
		for _, id := range []int64{1, 10, 11} {
			loc, _ := s.CheckpointLocation("job1", id)
			if _, err := loc.WriteMetadata(t.Context(), operator("job1", id, false, write(t, loc, "s", []byte("x")))); err != nil {
				t.Fatal(err)
			}
		}
		other, _ := s.CheckpointLocation("job2", 1)
		write(t, other, "s", []byte("y"))
		before := b.list(b.root)
		loc, _ := s.CheckpointLocation("job1", 1)
		// A state file of an aborted attempt, never acknowledged, is in the
		// directory too.
		write(t, loc, "unacknowledged", []byte("z"))
		for range 2 {
			if err := loc.Dispose(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		for _, f := range before {
			if !strings.HasPrefix(f, "job1/chk-1/") {
				want = append(want, f)
			}
		}
		if got := b.list(b.root); !reflect.DeepEqual(got, want) {
			t.Fatalf("after Dispose:\n got %q\nwant %q", got, want)
		}
	})
}

// DisposeState deletes the files of state that no checkpoint references
// (an acknowledgement that came too late), and nothing else.
func TestDriverDisposeState(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		loc, _ := open(t, b.root, snapshot.Options{FileInlineThreshold: 4}).CheckpointLocation("job1", 2)
		late, keep, inline := write(t, loc, "late", []byte("late state")), write(t, loc, "keep", []byte("kept state")), write(t, loc, "i", []byte("x"))
		objs := []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: late}, {Kind: snapshot.KindOperator, StateHandle: inline}}
		if err := snapshot.DisposeState(t.Context(), loc.Path(), objs); err != nil {
			t.Fatal(err)
		}
		if got, want := b.list(loc.Path()), []string{keep.Path}; !reflect.DeepEqual(got, want) {
			t.Fatalf("left %q, want %q", got, want)
		}
		bad := []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: snapshot.StateHandle{Path: "../chk-1/x", Size: 1}}}
		if err := snapshot.DisposeState(t.Context(), loc.Path(), bad); err == nil ||
			err.Error() != "dispose state in "+loc.Path()+`: state file path "../chk-1/x" is not a file name inside the checkpoint directory` {
			t.Fatalf("escape: %v", err)
		}
	})
}

// An aborted writer leaves nothing: no object, no unfinished upload.
func TestDriverAbortLeavesNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		loc, _ := open(t, b.root, snapshot.Options{}).CheckpointLocation("job1", 1)
		w, _ := loc.CreateStateFile(t.Context(), "big")
		if _, err := w.Write(bytes.Repeat([]byte{7}, s3.PartSize+1)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if got := b.list(b.root); len(got) != 0 {
			t.Fatalf("left %q", got)
		}
		if got := b.uploads(); len(got) != 0 {
			t.Fatalf("unfinished uploads %q", got)
		}
	})
}

// Savepoints: a unique directory, a refused checkpoint, and disposal of
// exactly what the savepoint references.
func TestDriverSavepoints(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		s := open(t, b.root+"/checkpoints", snapshot.Options{FileInlineThreshold: -1})
		spDir := b.root + "/savepoints"
		loc, err := s.SavepointLocation(ctx, spDir, "a1b2c3d4e5f6")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(spDir) + `/savepoint-a1b2c3-[0-9a-f]{12}$`).MatchString(loc.Path()) {
			t.Fatalf("savepoint path %q", loc.Path())
		}
		h := write(t, loc, "s", []byte("state"))
		if _, err := loc.WriteMetadata(ctx, operator("a1b2c3d4e5f6", 4, true, h)); err != nil {
			t.Fatal(err)
		}
		cp, _ := s.CheckpointLocation("job1", 9)
		if _, err := cp.WriteMetadata(ctx, operator("job1", 9, false, write(t, cp, "s", []byte("c")))); err != nil {
			t.Fatal(err)
		}
		if err := snapshot.DisposeSavepoint(ctx, cp.Path()); err == nil ||
			err.Error() != "dispose savepoint: "+cp.Path()+" holds checkpoint 9 of job job1, not a savepoint; refusing to delete it" {
			t.Fatalf("checkpoint: %v", err)
		}
		b.put(loc.Path()+"/notes.txt", []byte("not the savepoint's"))
		before := b.list(b.root)
		if err := snapshot.DisposeSavepoint(ctx, loc.Path()+"/_metadata"); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range before {
			if !strings.HasPrefix(f, "savepoints/savepoint-") || strings.HasSuffix(f, "/notes.txt") {
				want = append(want, f)
			}
		}
		if got := b.list(b.root); !reflect.DeepEqual(got, want) {
			t.Fatalf("after DisposeSavepoint:\n got %q\nwant %q", got, want)
		}
	})
}

// Key groups are read by range (a ranged read from an offset), each
// checked by its own checksum.
func TestDriverKeyGroups(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		loc, _ := open(t, b.root, snapshot.Options{FileInlineThreshold: -1}).CheckpointLocation("job1", 1)
		w, _ := loc.CreateStateFile(t.Context(), "agg-0")
		kw := snapshot.NewKeyGroupWriter(w, state.KeyGroupRange{Start: 2, End: 7})
		for _, g := range []struct {
			kg int
			s  string
		}{{3, "three"}, {4, "four!"}, {7, "seven"}} {
			if err := kw.StartKeyGroup(g.kg); err != nil {
				t.Fatal(err)
			}
			_, _ = kw.Write([]byte(g.s))
		}
		o, err := kw.Close()
		if err != nil {
			t.Fatal(err)
		}
		readGroups := func(r state.KeyGroupRange) (string, error) {
			rc, err := snapshot.OpenKeyGroups(t.Context(), loc.Path(), o, r)
			if err != nil {
				return "", err
			}
			defer func() { _ = rc.Close() }()
			got, err := io.ReadAll(rc)
			return string(got), err
		}
		for _, c := range []struct {
			r    state.KeyGroupRange
			want string
		}{
			{state.KeyGroupRange{Start: 0, End: 127}, "threefour!seven"},
			{state.KeyGroupRange{Start: 4, End: 6}, "four!"},
			{state.KeyGroupRange{Start: 5, End: 6}, ""},
			{state.KeyGroupRange{Start: 7, End: 9}, "seven"},
		} {
			if got, err := readGroups(c.r); err != nil || got != c.want {
				t.Fatalf("read %s = %q, %v; want %q", c.r, got, err, c.want)
			}
		}
		file := loc.Path() + "/" + o.Path
		b.put(file, []byte("threefour!sevem"))
		if got, err := readGroups(state.KeyGroupRange{Start: 2, End: 4}); err != nil || got != "threefour!" {
			t.Fatalf("undamaged groups: %q %v", got, err)
		}
		if _, err := readGroups(state.KeyGroupRange{Start: 6, End: 7}); err == nil || !strings.HasPrefix(err.Error(), "checksum mismatch in state file "+file) {
			t.Fatalf("damaged group: %v", err)
		}
	})
}

// A savepoint is materialized by copying the referenced files (server-side
// on S3) under the same names; the result is self-contained and survives a
// move. A missing file fails it and leaves no savepoint behind.
func TestDriverMaterializeSavepoint(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		s := open(t, b.root+"/checkpoints", snapshot.Options{FileInlineThreshold: 8})
		chk, _ := s.CheckpointLocation("a1b2c3d4e5f6", 7)
		small := write(t, chk, "small", []byte("tiny"))
		h1 := write(t, chk, "op-0", []byte("sixteen bytes!!!"))
		h2 := write(t, chk, "op-1", []byte("more than eight bytes"))
		write(t, chk, "orphan", []byte("not referenced at all"))
		md := operator("a1b2c3d4e5f6", 7, true, small, h1, h2, h1)
		dst, err := s.SavepointLocation(ctx, b.root+"/savepoints", "a1b2c3d4e5f6")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snapshot.MaterializeSavepoint(ctx, md, chk.Path(), dst); err != nil {
			t.Fatal(err)
		}
		if got, want := b.list(dst.Path()), slices.Sorted(slices.Values([]string{"_metadata", h1.Path, h2.Path})); !reflect.DeepEqual(got, want) {
			t.Fatalf("savepoint holds %q, want %q", got, want)
		}
		if got := b.list(chk.Path()); len(got) != 3 {
			t.Fatalf("checkpoint directory changed: %q", got)
		}
		moved := b.move(dst.Path())
		got, err := snapshot.LoadMetadata(ctx, moved)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []string{"tiny", "sixteen bytes!!!", "more than eight bytes", "sixteen bytes!!!"} {
			if b, err := read(t, moved, got.Operators[0].Subtasks[0].State[i].StateHandle); err != nil || string(b) != want {
				t.Fatalf("state %d = %q, %v", i, b, err)
			}
		}

		b.del(chk.Path() + "/" + h2.Path)
		dst2, _ := s.SavepointLocation(ctx, b.root+"/savepoints2", "a1b2c3d4e5f6")
		_, err = snapshot.MaterializeSavepoint(ctx, md, chk.Path(), dst2)
		if err == nil || !strings.Contains(err.Error(), h2.Path) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("missing file: %v", err)
		}
		if got := b.list(b.root + "/savepoints2"); len(got) != 0 {
			t.Fatalf("failed savepoint left %q", got)
		}
	})
}

// Every I/O call ends when its context does.
func TestDriverContextCanceled(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := open(t, b.root, snapshot.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Validate(ctx, "job1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Validate: %v", err)
		}
		if _, err := snapshot.LoadMetadata(ctx, b.root+"/job1/chk-1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("LoadMetadata: %v", err)
		}
	})
}
