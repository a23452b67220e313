package taskexec

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
)

// Rescaling channel state: which recovered records a subtask of a rescaled
// operator takes (Flink's FLINK-17979, without its virtual channels: weir
// replays recovered records through the chain and re-emits recovered output
// before anything else, so they need no channel of their own).
//
// Input channel state (the head's, consumer side). When the head runs at the
// parallelism it was checkpointed at, a subtask replays its own old
// subtask's objects, whatever happened to its producers (the records were
// routed to it, and still are: its key groups did not change). Otherwise,
// per input edge:
//
//   - hash: every new subtask reads the objects of every old subtask and
//     keeps the records whose key group is in its own key-group range, the
//     range whose keyed state it restores. A key group had one old owner,
//     so a key's records come from one old subtask, in that subtask's
//     order per channel.
//   - forward, rebalance: the objects of old subtask s go, whole, to new
//     subtask s mod newParallelism. Whole objects keep the order of each
//     old channel (what a forward edge promises); a rebalance edge promises
//     no order, and the recovered data is a bounded one-time load.
//   - broadcast: refused. Each old consumer held its own unconsumed suffix
//     of the same stream; a new subtask has no such suffix to take.
//
// Output channel state (the tail's, producer side). The objects of old
// subtask s go to new subtask s mod newParallelism (one owner each). An
// object written for as many subpartitions as the output has now is
// re-sent as raw buffers to the same subpartition (as without rescaling:
// the consumer kept its parallelism, so the subpartition's consumer is the
// same one). Otherwise its records go through the output's partitioner
// again: hash by key group to the new owner, rebalance round robin,
// forward to the one subpartition; broadcast is refused.
//
// Order per key on a hash edge (the one that has an order to keep): the new
// consumer replays its recovered input records before it polls its gate;
// its producers re-emit their recovered output before opening their
// operators, so it reaches the consumer through the gate after the replay,
// and before the producers' new records. That is the order of the original
// run: what the consumer had received, then what the producer had queued,
// then what the producer had not yet produced.

// channelShare says which recovered records of one edge a new subtask
// takes. Pure: no I/O.
type channelShare struct {
	route routing
	// oldP is the operator's parallelism in the checkpoint, newP and index
	// its parallelism and the subtask now.
	oldP, newP, index int
	// kgs is the subtask's key groups (hash input only).
	kgs state.KeyGroupRange
}

// errBroadcastRescale is why in-flight data of a broadcast edge cannot be
// redistributed.
var errBroadcastRescale = errors.New("the in-flight data of a broadcast edge cannot be redistributed")

// inputShare returns the share of a subtask of a head operator in the input
// channel state of one input edge.
func inputShare(route routing, maxP, oldP, newP, index int) (channelShare, error) {
	s := channelShare{route: route, oldP: oldP, newP: newP, index: index}
	if oldP != newP && route == routeBroadcast {
		return s, errBroadcastRescale
	}
	if s.byKey() {
		s.kgs = state.KeyGroupRangeForSubtask(maxP, newP, index)
	}
	return s, nil
}

// outputShare returns the share of a subtask of a tail operator in the
// output channel state of one output (the objects it owns; whether their
// buffers are re-sent or rerouted depends on each object's layout).
func outputShare(oldP, newP, index int) channelShare {
	return channelShare{route: routeForward, oldP: oldP, newP: newP, index: index}
}

// byKey reports whether the subtask takes the records of a hash edge by key
// group: it reads every old subtask's objects and filters their records.
func (s channelShare) byKey() bool { return s.oldP != s.newP && s.route == routeHash }

// owns reports whether the subtask reads the objects of an old subtask.
func (s channelShare) owns(oldSubtask int) bool {
	switch {
	case s.oldP == s.newP:
		return oldSubtask == s.index
	case s.byKey():
		return true
	default:
		return oldSubtask%s.newP == s.index
	}
}

// objects returns the objects of objs that the subtask reads, in the order
// of objs.
func (s channelShare) objects(objs []restoredChannel) []restoredChannel {
	var out []restoredChannel
	for _, o := range objs {
		if s.owns(o.subtask) {
			out = append(out, o)
		}
	}
	return out
}

// sortChannels puts channel state objects in replay order: by gate, then old
// subtask, then channel.
func sortChannels(objs []restoredChannel) {
	slices.SortStableFunc(objs, func(a, b restoredChannel) int {
		return cmp.Or(cmp.Compare(a.gate, b.gate), cmp.Compare(a.subtask, b.subtask), cmp.Compare(a.channel, b.channel))
	})
}

// records passes emit the recovered records of objs (already chosen by
// objects) that the subtask keeps, in order: the framed records of a buffer
// (uvarint length, bytes: what processBuffer takes), whole buffers when it
// keeps every record, else each run of consecutive kept records. load reads
// an object's buffers; keyGroup gives a record's key group (only when the
// share filters by key; the record is without its length).
func (s channelShare) records(objs []restoredChannel, load func(restoredChannel) ([][]byte, error),
	keyGroup func(rec []byte) (int, error), emit func(frames []byte) error) error {
	for _, o := range objs {
		bufs, err := load(o)
		if err != nil {
			return err
		}
		for _, b := range bufs {
			if !s.byKey() {
				if err := emit(b); err != nil {
					return err
				}
				continue
			}
			if err := s.keptRuns(b, keyGroup, emit); err != nil {
				return fmt.Errorf("recovered input %d channel %d of old subtask %d: %w", o.gate, o.channel, o.subtask, err)
			}
		}
	}
	return nil
}

// keptRuns passes emit each run of consecutive records of b whose key group
// is the subtask's.
func (s channelShare) keptRuns(b []byte, keyGroup func([]byte) (int, error), emit func([]byte) error) error {
	start := -1 // start of the current run in b
	for off := 0; off < len(b); {
		rec, rest, err := network.NextRecord(b[off:])
		if err != nil {
			return err
		}
		kg, err := keyGroup(rec)
		if err != nil {
			return err
		}
		keep := s.kgs.Contains(kg)
		switch {
		case keep && start < 0:
			start = off
		case !keep && start >= 0:
			if err := emit(b[start:off]); err != nil {
				return err
			}
			start = -1
		}
		off = len(b) - len(rest)
	}
	if start >= 0 {
		return emit(b[start:])
	}
	return nil
}

// recordKeyGroup returns a function giving the key group of an encoded
// record by its field key: dec and rec are its scratch space.
func recordKeyGroup(dec *record.Decoder, rec *record.Record, key string, maxP int) func([]byte) (int, error) {
	return func(b []byte) (int, error) {
		if err := dec.Decode(b, rec); err != nil {
			return 0, err
		}
		v, ok := rec.Get(key)
		if !ok {
			return 0, fmt.Errorf("recovered record has no key field %q: %s", key, rec.String())
		}
		return state.KeyGroupFor(v, maxP), nil
	}
}

// rerouteBuffers emits the records of recovered output buffers written for
// another number of subpartitions through o's partitioner, as Collect
// routes a new record.
func rerouteBuffers(o *output, bufs [][]byte, dec *record.Decoder, rec *record.Record) error {
	var keyGroup func([]byte) (int, error)
	switch o.route {
	case routeBroadcast:
		return errBroadcastRescale
	case routeHash:
		keyGroup = recordKeyGroup(dec, rec, o.key, o.maxP)
	}
	for _, b := range bufs {
		for data := b; len(data) > 0; {
			r, rest, err := network.NextRecord(data)
			if err != nil {
				return err
			}
			var sub int
			switch o.route {
			case routeRebalance:
				sub = o.next
				if o.next++; o.next == o.numSub {
					o.next = 0
				}
			case routeHash:
				kg, err := keyGroup(r)
				if err != nil {
					return err
				}
				sub = state.SubtaskForKeyGroup(o.maxP, o.numSub, kg)
			}
			if err := o.p.EmitRecord(sub, r); err != nil {
				return err
			}
			data = rest
		}
	}
	return nil
}
