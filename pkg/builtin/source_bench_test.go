package builtin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/operator"
)

// BenchmarkSequence: per-record cost of an unbounded sequence source
// (1024 keys), in batches as the task polls it.
func BenchmarkSequence(b *testing.B) {
	src := newSource(b, "sequence", operator.Properties{"keys": 1024})
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		b.Fatal(err)
	}
	var d discard
	b.ReportAllocs()
	b.ResetTimer()
	for d.n < b.N {
		if _, _, err := src.PollNext(&d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequenceSnapshot: the cost of a checkpoint of a sequence
// subtask with a million keys.
func BenchmarkSequenceSnapshot(b *testing.B) {
	src := newSource(b, "sequence", operator.Properties{"keys": 1_000_000})
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		b.Fatal(err)
	}
	var d discard
	if _, _, err := src.PollNext(&d); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := src.(operator.Snapshotter).SnapshotState(int64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileSource: per-record cost of reading 64-byte text lines.
func BenchmarkFileSource(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "in.txt")
	line := strings.Repeat("x", 63) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 100_000)), 0o644); err != nil {
		b.Fatal(err)
	}
	props := operator.Properties{"path": path}
	var d discard
	b.ReportAllocs()
	b.ResetTimer()
	for d.n < b.N {
		src := newSource(b, "file-source", props)
		if err := src.Open(testCtx("files", 0, 1)); err != nil {
			b.Fatal(err)
		}
		for d.n < b.N {
			st, _, err := src.PollNext(&d)
			if err != nil {
				b.Fatal(err)
			}
			if st == operator.EndOfInput {
				break
			}
		}
		if err := src.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
