package state

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/record"
)

func cloneInts(dst, src *[]int64) { *dst = append([]int64(nil), *src...) }

// dumpStore and dumpSnap list "kg/key=value" sorted, over key groups 0-3.
func dumpStore(s *KeyedStore[[]int64]) string {
	var out []string
	for kg := s.rng.Start; kg <= s.rng.End; kg++ {
		s.ForEach(kg, func(k string, v *[]int64) bool { out = append(out, fmt.Sprintf("%d/%s=%v", kg, k, *v)); return true })
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func dumpSnap(s *KeyedSnapshot[[]int64]) string {
	var out []string
	for kg := s.rng.Start - 1; kg <= s.rng.End+1; kg++ {
		s.ForEach(kg, func(k string, v *[]int64) bool { out = append(out, fmt.Sprintf("%d/%s=%v", kg, k, *v)); return true })
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestSnapshotCopyOnWrite runs scripts of store operations and snapshots
// and checks every snapshot, and the store, at the end. Commands:
// "set kg key n" (GetOrCreate, then assign a new slice), "inc kg key"
// (Get, then add 1 to the slice in place: what clone protects), "del kg
// key", "snap name", "release name".
func TestSnapshotCopyOnWrite(t *testing.T) {
	tests := []struct {
		name   string
		script string
		snaps  map[string]string
		store  string
	}{{
		name:   "in-place update, insert and delete after the snapshot",
		script: "set 1 a 1; set 1 b 2; set 3 c 3; snap A; inc 1 a; set 1 new 7; del 3 c",
		snaps:  map[string]string{"A": "1/a=[1] 1/b=[2] 3/c=[3]"},
		store:  "1/a=[2] 1/b=[2] 1/new=[7]",
	}, {
		name:   "empty store",
		script: "snap A; set 0 a 1",
		snaps:  map[string]string{"A": ""},
		store:  "0/a=[1]",
	}, {
		name:   "delete the frozen first slot: the last entry moves, the view does not",
		script: "set 2 a 1; set 2 b 2; set 2 c 3; snap A; del 2 a; inc 2 c; set 2 d 4",
		snaps:  map[string]string{"A": "2/a=[1] 2/b=[2] 2/c=[3]"},
		store:  "2/b=[2] 2/c=[4] 2/d=[4]",
	}, {
		name:   "delete and re-create a key",
		script: "set 0 k 1; snap A; del 0 k; set 0 k 5; inc 0 k",
		snaps:  map[string]string{"A": "0/k=[1]"},
		store:  "0/k=[6]",
	}, {
		name:   "two snapshots active at once, each sees its own moment",
		script: "set 0 a 1; set 1 b 1; snap A; inc 0 a; set 2 c 1; snap B; inc 0 a; inc 1 b; del 2 c; release A; inc 0 a",
		snaps:  map[string]string{"A": "0/a=[1] 1/b=[1]", "B": "0/a=[2] 1/b=[1] 2/c=[1]"},
		store:  "0/a=[4] 1/b=[2]",
	}, {
		name:   "newer snapshot released first, the older still protected",
		script: "set 0 a 1; snap A; snap B; release B; inc 0 a; del 0 a",
		snaps:  map[string]string{"A": "0/a=[1]", "B": "0/a=[1]"},
		store:  "",
	}, {
		name:   "writes after release go in place",
		script: "set 0 a 1; set 0 b 1; snap A; inc 0 a; release A; inc 0 a; inc 0 b; snap B; inc 0 b",
		snaps:  map[string]string{"B": "0/a=[3] 0/b=[2]"},
		store:  "0/a=[3] 0/b=[3]",
	}, {
		name:   "appends beyond the view after it, then deletes below it",
		script: "set 3 a 1; snap A; set 3 b 2; set 3 c 3; set 3 d 4; set 3 e 5; del 3 a; del 3 e; inc 3 b",
		snaps:  map[string]string{"A": "3/a=[1]"},
		store:  "3/b=[3] 3/c=[3] 3/d=[4]",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewKeyedStore[[]int64](KeyGroupRange{0, 3}, cloneInts)
			snaps := map[string]*KeyedSnapshot[[]int64]{}
			got := map[string]string{}
			for _, cmd := range strings.Split(tt.script, "; ") {
				f := strings.Fields(cmd)
				kg := 0
				if len(f) > 2 {
					kg, _ = strconv.Atoi(f[1])
				}
				switch f[0] {
				case "set":
					n, _ := strconv.ParseInt(f[3], 10, 64)
					*s.GetOrCreate(kg, []byte(f[2])) = []int64{n}
				case "inc":
					(*s.Get(kg, []byte(f[2])))[0]++
				case "del":
					s.Delete(kg, []byte(f[2]))
				case "snap":
					snaps[f[1]] = s.Snapshot()
				case "release":
					// What a released snapshot held, read before Release.
					got[f[1]] = dumpSnap(snaps[f[1]])
					snaps[f[1]].Release()
					delete(snaps, f[1])
				default:
					t.Fatalf("bad command %q", cmd)
				}
			}
			for name, snap := range snaps {
				got[name] = dumpSnap(snap)
				snap.Release()
			}
			for name, want := range tt.snaps {
				if got[name] != want {
					t.Errorf("snapshot %s = %q, want %q", name, got[name], want)
				}
			}
			if d := dumpStore(s); d != tt.store {
				t.Errorf("store = %q, want %q", d, tt.store)
			}
			if n := strings.Count(tt.store, "="); s.Len() != n {
				t.Errorf("Len = %d, want %d", s.Len(), n)
			}
			if a := s.active.Load(); a != 0 {
				t.Errorf("%d snapshots active after releasing all", a)
			}
		})
	}
}

// TestSnapshotReleased: a released snapshot refuses to be written, and
// Release twice counts once.
func TestSnapshotReleased(t *testing.T) {
	s := NewKeyedStore[int64](KeyGroupRange{0, 1}, nil)
	*s.GetOrCreate(0, []byte("a")) = 1
	a, b := s.Snapshot(), s.Snapshot()
	a.Release()
	a.Release()
	if got := s.active.Load(); got != 1 {
		t.Fatalf("active = %d after releasing one of two snapshots twice, want 1", got)
	}
	err := a.WriteKeyGroup(0, &bytes.Buffer{}, 1, appendInt64)
	if want := "write key group 0: the snapshot was released"; errString(err) != want {
		t.Errorf("WriteKeyGroup after Release: %q, want %q", errString(err), want)
	}
	b.Release()
}

// TestCopyOnlyWhileActive: the first write of an entry after a snapshot
// copies it (one allocation, the entry; its group's array once), later
// writes do not, and nothing is copied once the snapshot is released.
func TestCopyOnlyWhileActive(t *testing.T) {
	s := NewKeyedStore[[2]int64](KeyGroupRange{0, 0}, nil)
	for i := range 100 {
		s.GetOrCreate(0, []byte(strconv.Itoa(i)))[0] = int64(i)
	}
	snap := s.Snapshot()
	if n := allocsOnce(func() { s.Get(0, []byte("1"))[1]++ }); n != 2 {
		t.Errorf("first write of key 1 and of its group after the snapshot: %v allocations, want 2 (entry, array)", n)
	}
	if n := allocsOnce(func() { s.Get(0, []byte("2"))[1]++ }); n != 1 {
		t.Errorf("first write of key 2: %v allocations, want 1 (the entry)", n)
	}
	if n := testing.AllocsPerRun(10, func() { s.Get(0, []byte("1"))[1]++ }); n != 0 {
		t.Errorf("later writes of key 1: %v allocations, want 0", n)
	}
	snap.Release()
	if n := testing.AllocsPerRun(10, func() { s.Get(0, []byte("3"))[1]++; s.Delete(0, []byte("4")) }); n != 0 {
		t.Errorf("writes after Release: %v allocations, want 0", n)
	}
	if *s.Get(0, []byte("1")) != [2]int64{1, 12} {
		t.Errorf("key 1 = %v, want [1 12]", *s.Get(0, []byte("1")))
	}
}

// allocsOnce counts the allocations of one call of f (testing.AllocsPerRun
// calls it once more first, which would take the copy).
func allocsOnce(f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// TestSnapshotUnreleasedIsCollected: a snapshot dropped without Release is
// released by the garbage collector.
func TestSnapshotUnreleasedIsCollected(t *testing.T) {
	s := NewKeyedStore[int64](KeyGroupRange{0, 0}, nil)
	*s.GetOrCreate(0, []byte("a")) = 1
	_ = s.Snapshot()
	deadline := time.Now().Add(10 * time.Second)
	for s.active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an unreachable snapshot was not released within 10s of garbage collections")
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestSnapshotModel drives the store with random operations against a
// plain map, taking snapshots that other goroutines read while the store
// goes on (run with -race), up to three active at once. Every snapshot
// must read, and write, exactly the copy of the map made at its moment.
func TestSnapshotModel(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { modelRun(t, seed, 6000) })
	}
}

type modelSnap struct {
	snap *KeyedSnapshot[[]int64]
	want map[int]map[string][]int64 // the model at the snapshot
	got  chan map[int]string        // what a reader goroutine wrote, per key group
}

func modelRun(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	r := KeyGroupRange{3, 10}
	s := NewKeyedStore[[]int64](r, cloneInts)
	model := map[int]map[string][]int64{}
	for kg := r.Start; kg <= r.End; kg++ {
		model[kg] = map[string][]int64{}
	}
	var active []*modelSnap
	finish := func(m *modelSnap) {
		got := <-m.got
		for kg := r.Start; kg <= r.End; kg++ {
			if want := encodeModel(t, m.want[kg]); got[kg] != want {
				t.Fatalf("seed %d: key group %d written as %q, want %q", seed, kg, got[kg], want)
			}
		}
		if m.snap.Len() != modelLen(m.want) {
			t.Fatalf("seed %d: snapshot Len %d, want %d", seed, m.snap.Len(), modelLen(m.want))
		}
		m.snap.Release()
	}
	for range steps {
		kg := r.Start + rng.IntN(r.NumKeyGroups())
		key := []byte(fmt.Sprintf("k%d", rng.IntN(40)))
		switch op := rng.IntN(100); {
		case op < 30: // create or replace
			n := rng.Int64N(1000)
			*s.GetOrCreate(kg, key) = []int64{n, n}
			model[kg][string(key)] = []int64{n, n}
		case op < 65: // update in place
			if v := s.Get(kg, key); v != nil {
				(*v)[1]++
				model[kg][string(key)][1]++
			} else if _, ok := model[kg][string(key)]; ok {
				t.Fatalf("seed %d: Get(%d, %s) = nil, the model has it", seed, kg, key)
			}
		case op < 85:
			s.Delete(kg, key)
			delete(model[kg], string(key))
		case op < 93 && len(active) < 3:
			m := &modelSnap{snap: s.Snapshot(), want: copyModel(model), got: make(chan map[int]string, 1)}
			go func() {
				out := map[int]string{}
				for kg := r.Start; kg <= r.End; kg++ {
					var b bytes.Buffer
					if err := m.snap.WriteKeyGroup(kg, &b, 7, appendInts); err != nil {
						out[kg] = err.Error()
						continue
					}
					out[kg] = b.String()
				}
				m.got <- out
			}()
			active = append(active, m)
		case op < 100 && len(active) > 0:
			i := rng.IntN(len(active))
			finish(active[i])
			active = slices.Delete(active, i, i+1)
		}
		if s.Len() != modelLen(model) {
			t.Fatalf("seed %d: Len %d, model %d", seed, s.Len(), modelLen(model))
		}
	}
	for _, m := range active {
		finish(m)
	}
	for kg := r.Start; kg <= r.End; kg++ {
		got := map[string][]int64{}
		s.ForEach(kg, func(k string, v *[]int64) bool { got[k] = *v; return true })
		if fmt.Sprint(got) != fmt.Sprint(model[kg]) {
			t.Fatalf("seed %d: store key group %d = %v, model %v", seed, kg, got, model[kg])
		}
	}
}

func appendInts(dst []byte, v *[]int64) []byte {
	for _, n := range *v {
		dst = strconv.AppendInt(dst, n, 10)
		dst = append(dst, ',')
	}
	return dst
}

// encodeModel is what WriteKeyGroup writes for the key group m.
func encodeModel(t *testing.T, m map[string][]int64) string {
	s := NewKeyedStore[[]int64](KeyGroupRange{0, 0}, nil)
	for k, v := range m {
		*s.GetOrCreate(0, []byte(k)) = v
	}
	snap := s.Snapshot()
	defer snap.Release()
	var b bytes.Buffer
	if err := snap.WriteKeyGroup(0, &b, 7, appendInts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func copyModel(m map[int]map[string][]int64) map[int]map[string][]int64 {
	out := make(map[int]map[string][]int64, len(m))
	for kg, g := range m {
		out[kg] = make(map[string][]int64, len(g))
		for k, v := range g {
			out[kg][k] = slices.Clone(v)
		}
	}
	return out
}

func modelLen(m map[int]map[string][]int64) int {
	n := 0
	for _, g := range m {
		n += len(g)
	}
	return n
}

// fillStore adds keys record.Int(0..keys-1) over 128 key groups.
func fillStore(s *KeyedStore[[4]int64], keys int) {
	var kb []byte
	for i := range keys {
		v := record.Int(int64(i))
		kb = v.AppendKey(kb[:0])
		s.GetOrCreate(KeyGroupFor(v, 128), kb)[0] = int64(i)
	}
}

// BenchmarkKeyedStoreSnapshot measures the synchronous part of a
// checkpoint of a store of 100,000 keys over 128 key groups, with a value
// of four int64.
func BenchmarkKeyedStoreSnapshot(b *testing.B) {
	const keys = 100_000
	s := NewKeyedStore[[4]int64](KeyGroupRange{0, 127}, nil)
	fillStore(s, keys)
	b.ReportAllocs()
	for b.Loop() {
		snap := s.Snapshot()
		if snap.Len() != keys {
			b.Fatal(snap.Len())
		}
		snap.Release()
	}
}

// BenchmarkKeyedStoreSnapshot10M is the synchronous part at 10,000,000
// keys (about 1.5 GB of state, 15 s to build). It runs only when -bench
// names it: go test -run '^$' -bench 'KeyedStoreSnapshot10M' ./pkg/state/
// Besides sync-ms it reports the longest single write after the snapshot
// (max-first-write-us: the first write of a key group copies the group's
// array of entry pointers) and the cost of the first write of an entry
// (first-write-ns/key: the per-record path with the entry copy).
func BenchmarkKeyedStoreSnapshot10M(b *testing.B) {
	if !strings.Contains(flag.Lookup("test.bench").Value.String(), "10M") {
		b.Skip("10 M keys: run with -bench 'KeyedStoreSnapshot10M'")
	}
	const keys = 10_000_000
	s := NewKeyedStore[[4]int64](KeyGroupRange{0, 127}, nil)
	fillStore(s, keys)
	// One key per key group, and all keys, to write after the snapshot.
	first := make([][]byte, 128)
	for i := 0; len(first) > 0 && i < keys; i++ {
		v := record.Int(int64(i))
		if kg := KeyGroupFor(v, 128); first[kg] == nil {
			first[kg] = v.AppendKey(nil)
		}
	}
	runtime.GC()
	var sync, maxFirst, cow time.Duration
	var kb []byte
	for b.Loop() {
		start := time.Now()
		snap := s.Snapshot()
		sync += time.Since(start)
		for kg, k := range first {
			start := time.Now()
			s.Get(kg, k)[1]++
			maxFirst = max(maxFirst, time.Since(start))
		}
		// No StopTimer: an iteration takes seconds, which keeps b.N small
		// under any -benchtime; the metrics below are what counts.
		start = time.Now()
		for i := range keys / 10 {
			v := record.Int(int64(i))
			kb = v.AppendKey(kb[:0])
			s.Get(KeyGroupFor(v, 128), kb)[1]++
		}
		cow += time.Since(start)
		snap.Release()
		runtime.GC()
	}
	b.ReportMetric(float64(sync.Microseconds())/1000/float64(b.N), "sync-ms")
	b.ReportMetric(float64(maxFirst.Microseconds()), "max-first-write-us")
	b.ReportMetric(float64(cow.Nanoseconds())/float64(b.N)/(keys/10), "first-write-ns/key")
}
