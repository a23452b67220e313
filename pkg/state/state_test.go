package state

import (
	"fmt"
	"sort"
	"testing"

	"github.com/weirstream/weir/pkg/record"
)

func TestKeyGroupRangeForSubtaskFlinkValues(t *testing.T) {
	cases := []struct {
		maxP, p int
		want    []KeyGroupRange
	}{
		{128, 3, []KeyGroupRange{{0, 42}, {43, 85}, {86, 127}}},
		{128, 1, []KeyGroupRange{{0, 127}}},
		{128, 4, []KeyGroupRange{{0, 31}, {32, 63}, {64, 95}, {96, 127}}},
		{10, 3, []KeyGroupRange{{0, 3}, {4, 6}, {7, 9}}},
		{7, 2, []KeyGroupRange{{0, 3}, {4, 6}}},
		{4, 4, []KeyGroupRange{{0, 0}, {1, 1}, {2, 2}, {3, 3}}},
		{5, 3, []KeyGroupRange{{0, 1}, {2, 3}, {4, 4}}},
	}
	for _, c := range cases {
		for i, want := range c.want {
			if got := KeyGroupRangeForSubtask(c.maxP, c.p, i); got != want {
				t.Errorf("KeyGroupRangeForSubtask(%d, %d, %d) = %s, want %s", c.maxP, c.p, i, got, want)
			}
		}
	}
}

// TestAssignmentConsistent checks, for many (maxP, p), that the ranges tile
// [0, maxP) in order with no gap or overlap, and that every key group maps
// back to the subtask whose range contains it.
func TestAssignmentConsistent(t *testing.T) {
	for _, maxP := range []int{1, 2, 3, 7, 10, 64, 100, 128, 129, 1000, 4096} {
		for p := 1; p <= maxP && p <= 160; p++ {
			next := 0
			for i := 0; i < p; i++ {
				r := KeyGroupRangeForSubtask(maxP, p, i)
				if r.Start != next || r.NumKeyGroups() < 1 {
					t.Fatalf("maxP %d p %d subtask %d: range %s, want start %d and non-empty", maxP, p, i, r, next)
				}
				for kg := r.Start; kg <= r.End; kg++ {
					if got := SubtaskForKeyGroup(maxP, p, kg); got != i {
						t.Fatalf("maxP %d p %d: key group %d in range %s of subtask %d maps to subtask %d", maxP, p, kg, r, i, got)
					}
				}
				next = r.End + 1
			}
			if next != maxP {
				t.Fatalf("maxP %d p %d: ranges end at %d", maxP, p, next-1)
			}
		}
	}
}

func TestKeyGroupRange(t *testing.T) {
	r := KeyGroupRange{43, 85}
	if r.String() != "[43-85]" || r.NumKeyGroups() != 43 || !r.Contains(43) || !r.Contains(85) || r.Contains(42) || r.Contains(86) {
		t.Fatalf("range %s: n=%d", r, r.NumKeyGroups())
	}
	if (KeyGroupRange{0, -1}).NumKeyGroups() != 0 {
		t.Fatal("empty range is not empty")
	}
}

func TestValidateParallelism(t *testing.T) {
	cases := []struct {
		maxP, p int
		want    string
	}{
		{128, 3, ""},
		{32768, 32768, ""},
		{0, 1, "max parallelism 0 must be in [1, 32768]"},
		{32769, 1, "max parallelism 32769 must be in [1, 32768]"},
		{128, 0, "parallelism 0 must be in [1, max parallelism 128]"},
		{4, 5, "parallelism 5 must be in [1, max parallelism 4]"},
	}
	for _, c := range cases {
		err := ValidateParallelism(c.maxP, c.p)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("ValidateParallelism(%d, %d) = %q, want %q", c.maxP, c.p, got, c.want)
		}
	}
}

// TestKeyGroupForStable pins key groups of a few keys: they decide where
// state lives in savepoints and must never change.
func TestKeyGroupForStable(t *testing.T) {
	cases := []struct {
		v    record.Value
		maxP int
		want int
	}{
		{record.Int(1), 128, 46},      // Hash64 0x4c3dbdf20344ad2e
		{record.String("a"), 128, 57}, // Hash64 0x5b68d1184aee9db9
		{record.Int(0), 128, 50},      // Hash64 0x909b22dd58ba8db2
		{record.Int(1), 1, 0},
	}
	for _, c := range cases {
		if got := KeyGroupFor(c.v, c.maxP); got != c.want {
			t.Errorf("KeyGroupFor(%v, %d) = %d, want %d", c.v, c.maxP, got, c.want)
		}
	}
	// Keys spread over key groups.
	seen := map[int]bool{}
	for i := int64(0); i < 10000; i++ {
		seen[KeyGroupFor(record.Int(i), 128)] = true
	}
	if len(seen) != 128 {
		t.Errorf("10000 int keys hit %d of 128 key groups", len(seen))
	}
}

func TestKeyedStore(t *testing.T) {
	s := NewKeyedStore[int64](KeyGroupRange{10, 12}, nil)
	if s.Range() != (KeyGroupRange{10, 12}) || s.Len() != 0 {
		t.Fatal("new store")
	}
	if s.Get(11, []byte("a")) != nil {
		t.Fatal("Get on empty store")
	}
	*s.GetOrCreate(11, []byte("a")) += 5
	*s.GetOrCreate(11, []byte("a")) += 1
	*s.GetOrCreate(12, []byte("a")) = 100
	*s.GetOrCreate(11, []byte("b")) = 7
	if got := *s.Get(11, []byte("a")); got != 6 {
		t.Fatalf("a in 11 = %d, want 6", got)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	var keys []string
	s.ForEach(11, func(k string, v *int64) bool { keys = append(keys, fmt.Sprintf("%s=%d", k, *v)); return true })
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[a=6 b=7]" {
		t.Fatalf("ForEach(11) = %v", keys)
	}
	n := 0
	s.ForEach(11, func(string, *int64) bool { n++; return false })
	if n != 1 {
		t.Fatalf("ForEach did not stop: %d calls", n)
	}
	s.ForEach(10, func(string, *int64) bool { t.Fatal("key group 10 is empty"); return true })
	s.Delete(11, []byte("a"))
	s.Delete(11, []byte("zz"))
	if s.Get(11, []byte("a")) != nil || s.Len() != 2 || *s.Get(12, []byte("a")) != 100 {
		t.Fatalf("after delete: len %d", s.Len())
	}
}

func TestKeyedStoreOutOfRangePanics(t *testing.T) {
	s := NewKeyedStore[int](KeyGroupRange{0, 42}, nil)
	defer func() {
		r := recover()
		want := "state: key group 43 is not in this subtask's key group range [0-42]; the key was routed to the wrong subtask"
		if r != want {
			t.Fatalf("panic %v, want %s", r, want)
		}
	}()
	s.GetOrCreate(43, []byte("k"))
}

func TestKeyedStoreZeroAlloc(t *testing.T) {
	s := NewKeyedStore[[2]int64](KeyGroupRange{0, 127}, nil)
	key := record.String("user-17").AppendKey(nil)
	kg := KeyGroupFor(record.String("user-17"), 128)
	s.GetOrCreate(kg, key)
	if n := testing.AllocsPerRun(100, func() {
		s.GetOrCreate(kg, key)[0]++
		_ = s.Get(kg, key)
	}); n != 0 {
		t.Fatalf("GetOrCreate/Get of a known key allocate %v times, want 0", n)
	}
}

func BenchmarkKeyedStoreGetOrCreate(b *testing.B) {
	s := NewKeyedStore[int64](KeyGroupRange{0, 127}, nil)
	keys := make([][]byte, 1024)
	kgs := make([]int, len(keys))
	for i := range keys {
		v := record.Int(int64(i))
		keys[i] = v.AppendKey(nil)
		kgs[i] = KeyGroupFor(v, 128)
		s.GetOrCreate(kgs[i], keys[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		*s.GetOrCreate(kgs[i&1023], keys[i&1023]) += 1
		i++
	}
}

func BenchmarkKeyedStoreGet(b *testing.B) {
	s := NewKeyedStore[int64](KeyGroupRange{0, 127}, nil)
	var scratch []byte
	for i := 0; i < 1024; i++ {
		v := record.Int(int64(i))
		scratch = v.AppendKey(scratch[:0])
		s.GetOrCreate(KeyGroupFor(v, 128), scratch)
	}
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		// The whole per-record path: key bytes, key group, lookup.
		v := record.Int(i & 1023)
		scratch = v.AppendKey(scratch[:0])
		if s.Get(KeyGroupFor(v, 128), scratch) == nil {
			b.Fatal("missing key")
		}
		i++
	}
}
