package snapshot

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// A savepoint is materialized from the checkpoint directory the tasks
// wrote into: the files it references are copied under the same names,
// _metadata is written last with relative paths, and the result still
// restores after the directory is moved.
func TestMaterializeSavepoint(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, filepath.Join(root, "checkpoints"), Options{FileInlineThreshold: 8})
	chk, _ := s.CheckpointLocation("a1b2c3d4e5f6", 7)
	small := writeState(t, chk, "small", []byte("tiny")) // inline
	h1 := writeState(t, chk, "op-0", big)
	h2 := writeState(t, chk, "op-1", []byte("more than eight bytes"))
	// Something the tasks wrote that the metadata does not reference (a
	// snapshot of an aborted attempt) is not copied.
	writeState(t, chk, "orphan", []byte("not referenced at all"))
	md := oneOperator("a1b2c3d4e5f6", 7, true, small, h1, h2, h1)

	dst, err := s.SavepointLocation(ctx, filepath.Join(root, "savepoints"), "a1b2c3d4e5f6")
	if err != nil {
		t.Fatal(err)
	}
	n, err := MaterializeSavepoint(ctx, md, chk.Path(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("metadata size %d", n)
	}
	if got, want := listTree(t, dst.Path()), []string{"./", MetadataFileName, h1.Path, h2.Path}; !reflect.DeepEqual(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("savepoint holds %q, want %q", got, want)
	}
	// The checkpoint directory is untouched (the caller deletes it).
	if len(listTree(t, chk.Path())) != 4 {
		t.Fatalf("checkpoint directory changed: %q", listTree(t, chk.Path()))
	}

	// Relocatable: move it and read everything back.
	moved := filepath.Join(root, "elsewhere", "sp")
	_ = os.MkdirAll(filepath.Dir(moved), 0o755)
	if err := os.Rename(dst.Path(), moved); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMetadata(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Savepoint || got.CheckpointID != 7 || got.Dir != moved {
		t.Fatalf("loaded %+v", got)
	}
	for i, o := range got.Operators[0].Subtasks[0].State {
		if strings.ContainsAny(o.Path, "/\\") {
			t.Fatalf("state %d has path %q, want a base name", i, o.Path)
		}
		b, err := readState(moved, o.StateHandle)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		want := map[int]string{0: "tiny", 1: string(big), 2: "more than eight bytes", 3: string(big)}[i]
		if string(b) != want {
			t.Fatalf("state %d: %d bytes, want %d", i, len(b), len(want))
		}
	}
}

// A missing or damaged state file, a full disk or a checkpoint location
// fail the savepoint with the cause, and leave no savepoint directory.
func TestMaterializeSavepointFails(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, filepath.Join(root, "checkpoints"), Options{FileInlineThreshold: -1})
	spDir := filepath.Join(root, "savepoints")
	chk, _ := s.CheckpointLocation("a1b2c3d4e5f6", 3)
	good := writeState(t, chk, "good", []byte("good state"))
	damaged := writeState(t, chk, "damaged", []byte("damaged state"))
	if err := os.WriteFile(filepath.Join(chk.Path(), damaged.Path), []byte("DAMAGED state"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := StateHandle{Path: "gone-0011", Size: 3, CRC: 1}

	for _, tc := range []struct {
		name string
		md   *Metadata
		disk int // > 0: the disk is full after that many bytes
		want string
	}{
		{"missing", oneOperator("a1b2c3d4e5f6", 3, true, good, missing), 0,
			"copy state file gone-0011: state file " + filepath.Join(chk.Path(), "gone-0011") + " is missing"},
		{"damaged", oneOperator("a1b2c3d4e5f6", 3, true, damaged), 0,
			"checksum mismatch in state file " + filepath.Join(chk.Path(), damaged.Path)},
		{"disk full", oneOperator("a1b2c3d4e5f6", 3, true, good), 4, "no space left on device"},
		{"not a savepoint", oneOperator("a1b2c3d4e5f6", 3, false, good), 0, "metadata says savepoint=false, the location is a savepoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, err := s.SavepointLocation(ctx, spDir, "a1b2c3d4e5f6")
			if err != nil {
				t.Fatal(err)
			}
			if tc.disk > 0 {
				diskFull(t, tc.disk)
			}
			_, err = MaterializeSavepoint(ctx, tc.md, chk.Path(), dst)
			if err == nil || !strings.HasPrefix(err.Error(), "materialize savepoint "+dst.Path()+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("MaterializeSavepoint = %v, want an error naming %s with %q", err, dst.Path(), tc.want)
			}
			if tc.name != "not a savepoint" {
				if _, serr := os.Stat(dst.Path()); !os.IsNotExist(serr) {
					t.Fatalf("failed savepoint left %s: %v", dst.Path(), serr)
				}
			}
		})
	}
	// The checkpoint directory is untouched.
	if got := listTree(t, chk.Path()); len(got) != 3 {
		t.Fatalf("checkpoint directory: %q", got)
	}

	// A checkpoint location is no savepoint target.
	other, _ := s.CheckpointLocation("a1b2c3d4e5f6", 4)
	if _, err := MaterializeSavepoint(ctx, oneOperator("a1b2c3d4e5f6", 3, true, good), chk.Path(), other); err == nil ||
		!strings.Contains(err.Error(), "metadata says savepoint=true, the location is a checkpoint") {
		t.Fatalf("into a checkpoint location: %v", err)
	}
}

// With jobmanager storage every handle is inline: nothing is copied and
// the savepoint is one _metadata file on disk.
func TestMaterializeSavepointInline(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, "jobmanager", Options{})
	chk, _ := s.CheckpointLocation("jmsp01", 2)
	h := writeState(t, chk, "s", []byte("inline state"))
	dst, err := s.SavepointLocation(ctx, root, "jmsp01")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MaterializeSavepoint(ctx, oneOperator("jmsp01", 2, true, h), chk.Path(), dst); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, dst.Path()); !reflect.DeepEqual(got, []string{"./", MetadataFileName}) {
		t.Fatalf("savepoint holds %q", got)
	}
	md, err := LoadMetadata(ctx, dst.Path())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := readState(md.Dir, md.Operators[0].Subtasks[0].State[0].StateHandle); err != nil || string(b) != "inline state" {
		t.Fatalf("state %q, %v", b, err)
	}
}
