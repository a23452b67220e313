package taskexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
)

// A recovered record of the tests: key, the old channel it was in, and its
// position among that channel's records of its key.
type rescaleRec struct {
	key, oldSubtask, gate, channel, seq int64
}

func (r rescaleRec) encode() []byte {
	var rec record.Record
	rec.Set("key", record.Int(r.key))
	rec.Set("s", record.Int(r.oldSubtask))
	rec.Set("g", record.Int(r.gate))
	rec.Set("c", record.Int(r.channel))
	rec.Set("seq", record.Int(r.seq))
	b := rec.AppendBinary(nil)
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func decodeRescaleRecs(t *testing.T, frames []byte) []rescaleRec {
	t.Helper()
	var out []rescaleRec
	var dec record.Decoder
	var rec record.Record
	for len(frames) > 0 {
		b, rest, err := network.NextRecord(frames)
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(b, &rec); err != nil {
			t.Fatal(err)
		}
		f := func(name string) int64 {
			v, _ := rec.Get(name)
			n, ok := v.AsInt()
			if !ok {
				t.Fatalf("record %s: no int %q", rec.String(), name)
			}
			return n
		}
		out = append(out, rescaleRec{f("key"), f("s"), f("g"), f("c"), f("seq")})
		frames = rest
	}
	return out
}

type channelKey struct{ subtask, gate, channel int }

// oldChannelState builds the channel state of an edge written by oldP
// subtasks: per old subtask and channel (producer), the records of keys
// interleaved, split into buffers at random; on a hash edge only the keys
// of the subtask's key groups.
func oldChannelState(rnd *rand.Rand, route routing, maxP, oldP, channels, keys, perKey int) (objs []restoredChannel, bufs map[channelKey][][]byte, all []rescaleRec) {
	bufs = map[channelKey][][]byte{}
	for s := range oldP {
		for gate := range 2 {
			for ch := range channels {
				var recs []rescaleRec
				next := map[int64]int64{}
				for range keys * perKey {
					k := int64(rnd.IntN(keys))
					if route == routeHash && state.SubtaskForKeyGroup(maxP, oldP, state.KeyGroupFor(record.Int(k), maxP)) != s {
						continue
					}
					recs = append(recs, rescaleRec{k, int64(s), int64(gate), int64(ch), next[k]})
					next[k]++
				}
				if len(recs) == 0 {
					continue // no object for an empty channel
				}
				all = append(all, recs...)
				var bb [][]byte
				var cur []byte
				for _, r := range recs {
					cur = append(cur, r.encode()...)
					if rnd.IntN(3) == 0 {
						bb, cur = append(bb, cur), nil
					}
				}
				if len(cur) > 0 {
					bb = append(bb, cur)
				}
				k := channelKey{s, gate, ch}
				bufs[k] = bb
				objs = append(objs, restoredChannel{op: "op", subtask: s, gate: gate, channel: ch})
			}
		}
	}
	rnd.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
	return objs, bufs, all
}

// Every recovered input record lands on exactly one new subtask, the one
// that owns it: on a hash edge the owner of its key group, on forward and
// rebalance edges new subtask (old subtask mod new parallelism); none is
// lost or doubled, and each old channel's records of a key keep their order.
func TestInputShareRedistributes(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 9))
	for _, route := range []routing{routeHash, routeRebalance, routeForward} {
		for _, maxP := range []int{1, 7, 128} {
			for oldP := 1; oldP <= min(5, maxP); oldP++ {
				for newP := 1; newP <= min(5, maxP); newP++ {
					name := fmt.Sprintf("route %d maxP %d %d->%d", route, maxP, oldP, newP)
					objs, bufs, all := oldChannelState(rnd, route, maxP, oldP, 3, 20, 4)
					sortChannels(objs)
					load := func(o restoredChannel) ([][]byte, error) { return bufs[channelKey{o.subtask, o.gate, o.channel}], nil }
					seen := map[rescaleRec]int{}
					for idx := range newP {
						s, err := inputShare(route, maxP, oldP, newP, idx)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						var dec record.Decoder
						var rec record.Record
						keyGroup := recordKeyGroup(&dec, &rec, "key", maxP)
						if !s.byKey() {
							keyGroup = func([]byte) (int, error) {
								t.Fatalf("%s: a record decoded though the share keeps every record", name)
								return 0, nil
							}
						}
						var got []rescaleRec
						err = s.records(s.objects(objs), load, keyGroup, func(frames []byte) error {
							got = append(got, decodeRescaleRecs(t, frames)...)
							return nil
						})
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						last := map[[4]int64]int64{} // key, old channel -> last seq
						for _, r := range got {
							seen[r]++
							want := int(r.oldSubtask)
							switch {
							case oldP == newP:
							case route == routeHash:
								want = state.SubtaskForKeyGroup(maxP, newP, state.KeyGroupFor(record.Int(r.key), maxP))
							default:
								want %= newP
							}
							if want != idx {
								t.Fatalf("%s: record %+v on new subtask %d, want %d", name, r, idx, want)
							}
							k := [4]int64{r.key, r.oldSubtask, r.gate, r.channel}
							if prev, ok := last[k]; (ok && r.seq != prev+1) || (!ok && r.seq != 0) {
								t.Fatalf("%s: new subtask %d: record %+v after seq %d (ok %v): order of a key lost", name, idx, r, prev, ok)
							}
							last[k] = r.seq
						}
					}
					if len(seen) != len(all) {
						t.Fatalf("%s: %d distinct records recovered, want %d", name, len(seen), len(all))
					}
					for _, r := range all {
						if seen[r] != 1 {
							t.Fatalf("%s: record %+v recovered %d times", name, r, seen[r])
						}
					}
				}
			}
		}
	}
}

// Output channel state: each old subtask's objects have exactly one owner,
// old subtask mod new parallelism (itself at an unchanged parallelism).
func TestOutputShareOwners(t *testing.T) {
	for oldP := 1; oldP <= 6; oldP++ {
		for newP := 1; newP <= 6; newP++ {
			for s := range oldP {
				var owners []int
				for idx := range newP {
					if outputShare(oldP, newP, idx).owns(s) {
						owners = append(owners, idx)
					}
				}
				if want := []int{s % newP}; !slices.Equal(owners, want) {
					t.Errorf("%d->%d: old subtask %d owned by %v, want %v", oldP, newP, s, owners, want)
				}
			}
		}
	}
}

// The in-flight data of a broadcast edge is refused when rescaled, taken as
// it is at the same parallelism.
func TestInputShareBroadcast(t *testing.T) {
	if _, err := inputShare(routeBroadcast, 128, 2, 3, 0); !errors.Is(err, errBroadcastRescale) {
		t.Errorf("rescaled broadcast: %v, want %v", err, errBroadcastRescale)
	}
	s, err := inputShare(routeBroadcast, 128, 2, 2, 1)
	if err != nil || s.byKey() || !s.owns(1) || s.owns(0) {
		t.Errorf("broadcast at the same parallelism: %+v %v", s, err)
	}
}

// A hash share emits runs of consecutive kept records, never splitting a
// record; a corrupt buffer or a record without the key field is an error
// naming the channel.
func TestInputShareKeptRuns(t *testing.T) {
	const maxP = 128
	// Two keys of different halves of the key groups.
	var lo, hi int64 = -1, -1
	for k := int64(0); lo < 0 || hi < 0; k++ {
		if state.KeyGroupFor(record.Int(k), maxP) < maxP/2 {
			lo = max(lo, k)
		} else if hi < 0 {
			hi = k
		}
	}
	rec := func(k int64, seq int64) []byte { return rescaleRec{key: k, seq: seq}.encode() }
	buf := slices.Concat(rec(lo, 0), rec(lo, 1), rec(hi, 0), rec(lo, 2), rec(hi, 1), rec(hi, 2))
	s, err := inputShare(routeHash, maxP, 1, 2, 0) // key groups [0-63]
	if err != nil {
		t.Fatal(err)
	}
	var dec record.Decoder
	var r record.Record
	var runs []string
	err = s.records([]restoredChannel{{subtask: 0}}, func(restoredChannel) ([][]byte, error) { return [][]byte{buf}, nil },
		recordKeyGroup(&dec, &r, "key", maxP), func(frames []byte) error {
			var seqs []string
			for _, x := range decodeRescaleRecs(t, frames) {
				seqs = append(seqs, fmt.Sprint(x.seq))
			}
			runs = append(runs, strings.Join(seqs, ","))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0,1", "2"}; !slices.Equal(runs, want) {
		t.Errorf("runs %v, want %v", runs, want)
	}

	var noKey record.Record
	noKey.Set("other", record.Int(1))
	nk := noKey.AppendBinary(nil)
	for _, tc := range []struct {
		name string
		buf  []byte
		want string
	}{
		{"truncated", buf[:len(buf)-2], "recovered input 1 channel 2 of old subtask 0: "},
		{"no key", append(binary.AppendUvarint(nil, uint64(len(nk))), nk...), `recovered input 1 channel 2 of old subtask 0: recovered record has no key field "key": {"other":1}`},
	} {
		err := s.records([]restoredChannel{{gate: 1, channel: 2}}, func(restoredChannel) ([][]byte, error) { return [][]byte{tc.buf}, nil },
			recordKeyGroup(&dec, &r, "key", maxP), func([]byte) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s...", tc.name, err, tc.want)
		}
	}
	loadErr := errors.New("gone")
	if err := s.records([]restoredChannel{{}}, func(restoredChannel) ([][]byte, error) { return nil, loadErr }, nil, nil); !errors.Is(err, loadErr) {
		t.Errorf("load error: %v", err)
	}
}

// Replay order: by gate, then old subtask, then channel.
func TestSortChannels(t *testing.T) {
	objs := []restoredChannel{{gate: 1, subtask: 0, channel: 0}, {gate: 0, subtask: 1, channel: 0}, {gate: 0, subtask: 0, channel: 2}, {gate: 0, subtask: 0, channel: 1}}
	sortChannels(objs)
	var got []string
	for _, o := range objs {
		got = append(got, fmt.Sprintf("%d/%d/%d", o.gate, o.subtask, o.channel))
	}
	if want := []string{"0/0/1", "0/0/2", "0/1/0", "1/0/0"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
