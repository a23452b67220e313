package builtin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
)

func init() {
	operator.Register(&operator.Type{
		Name:  "aggregate",
		Kind:  operator.KindTransform,
		Keyed: true,
		Properties: []operator.PropertySpec{
			{Name: "aggregates", Required: true, Description: "map of 1 to 256 output fields to count, sum(f), min(f), max(f) or avg(f); per key of the hash input, each input record is emitted with the running values set"},
		},
		Validate: func(p operator.Properties) error {
			_, err := parseAggregates(p)
			return err
		},
		NewOperator: func(p operator.Properties) (operator.Operator, error) {
			specs, err := parseAggregates(p)
			if err != nil {
				return nil, err
			}
			return &aggregateOp{specs: specs}, nil
		},
	})
}

type aggKind uint8

const (
	aggCount aggKind = iota
	aggSum
	aggMin
	aggMax
	aggAvg
)

// aggSpec is one entry of `aggregates`: output field <- kind(field).
type aggSpec struct {
	out   string
	kind  aggKind
	field string // "" for count
	src   string // as written, for messages
}

const aggWant = "want count, sum(f), min(f), max(f) or avg(f)"

// maxAggregates bounds the output fields of an aggregate (docs/jobs.md,
// "Limits"): every key holds an accumulator per field, and a checkpoint
// copies them all.
const maxAggregates = 256

// parseAggregates returns the aggregates sorted by output field, the order
// in which new fields are appended to the emitted record.
func parseAggregates(p operator.Properties) ([]aggSpec, error) {
	const prop = "aggregates"
	m, ok, err := p.Map(prop)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("property %q is required", prop)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("property %q: want at least one output field", prop)
	}
	if len(m) > maxAggregates {
		return nil, fmt.Errorf("property %q: %d output fields, more than the maximum of %d", prop, len(m), maxAggregates)
	}
	specs := make([]aggSpec, 0, len(m))
	for out, v := range m {
		if out == "" {
			return nil, fmt.Errorf("property %q: output field names must not be empty", prop)
		}
		src, isString := v.(string)
		if !isString {
			return nil, fmt.Errorf("property %q: field %q: want a string (%s), got %v", prop, out, strings.TrimPrefix(aggWant, "want "), v)
		}
		kind, field, ok := parseAggSpec(src)
		if !ok {
			return nil, fmt.Errorf("property %q: field %q: unknown aggregate %q: %s", prop, out, src, aggWant)
		}
		specs = append(specs, aggSpec{out: out, kind: kind, field: field, src: src})
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].out < specs[j].out })
	return specs, nil
}

// parseAggSpec parses "count" or "fn(field)", tolerating whitespace around
// the function name, the parentheses and the field.
func parseAggSpec(s string) (aggKind, string, bool) {
	t := strings.TrimSpace(s)
	if t == "count" {
		return aggCount, "", true
	}
	open := strings.IndexByte(t, '(')
	if open < 0 || !strings.HasSuffix(t, ")") {
		return 0, "", false
	}
	fn := strings.TrimSpace(t[:open])
	arg := strings.TrimSpace(t[open+1 : len(t)-1])
	if fn == "count" && arg == "" {
		return aggCount, "", true
	}
	if arg == "" || strings.ContainsAny(arg, "()") {
		return 0, "", false
	}
	switch fn {
	case "sum":
		return aggSum, arg, true
	case "min":
		return aggMin, arg, true
	case "max":
		return aggMax, arg, true
	case "avg":
		return aggAvg, arg, true
	}
	return 0, "", false
}

// aggAcc is the running value of one aggregate for one key. It is kept
// small (32 bytes, no pointers): the first update of a key after a
// checkpoint copies all of the key's accumulators (copy-on-write).
type aggAcc struct {
	n    int64 // records counted (count) or contributing (others)
	isum int64 // sum: the int sum; min, max: the best value if an int
	fsum float64
	// sum, avg: the sum is in fsum (a float was added, or ints
	// overflowed); min, max: the best value is the float fsum.
	float bool
}

// aggKeyState is the state of one key: one accumulator per spec, allocated
// when the key is first seen. ProcessRecord updates accs in place, so a
// copy-on-write copies the slice (cloneAggKeyState).
type aggKeyState struct {
	accs []aggAcc
}

func cloneAggKeyState(dst, src *aggKeyState) { dst.accs = slices.Clone(src.accs) }

// aggregateOp keeps running aggregates per key of its hash-partitioned
// input, in a state.KeyedStore by key group. That store is its checkpointed
// state (Snapshotter): a copy-on-write view is taken at the barrier and
// written key group by key group in the aggStateV1 format; a restore reads the key groups of
// the new range, so the state follows its keys through rescaling.
//
// Semantics per input record, for each aggregate: count counts every
// record; sum, min, max and avg use the named field when it is a number and
// skip the record (for that aggregate only) when the field is missing or
// null, as SQL aggregates skip NULL; any other value fails the operator.
// Until a value has been seen, sum, min, max and avg emit null. A sum of
// ints is an int until a float is added or the sum would overflow int64,
// then a float; avg is always a float; min and max keep the value as it was
// (int or float). The emitted record is the input record with every output
// field set: replaced in place if the input has it, else appended in the
// order of output field names.
type aggregateOp struct {
	specs []aggSpec

	id       string
	keyField string
	maxP     int
	kgs      state.KeyGroupRange
	store    *state.KeyedStore[aggKeyState]
	keyBuf   []byte
	out      record.Record
}

func (a *aggregateOp) Open(ctx *operator.Context) error {
	a.id = ctx.OperatorID
	if ctx.KeyField == "" {
		return fmt.Errorf("aggregate %q: the input is not hash-partitioned by a key field", a.id)
	}
	if ctx.MaxParallelism < 1 || ctx.KeyGroups.NumKeyGroups() < 1 {
		return fmt.Errorf("aggregate %q: max parallelism %d, key groups %s", a.id, ctx.MaxParallelism, ctx.KeyGroups)
	}
	a.keyField, a.maxP, a.kgs = ctx.KeyField, ctx.MaxParallelism, ctx.KeyGroups
	a.store = state.NewKeyedStore[aggKeyState](ctx.KeyGroups, cloneAggKeyState)
	return nil
}

func (a *aggregateOp) ProcessRecord(in *record.Record, out operator.Collector) error {
	// A record without its key field fails, as at the hash partitioner
	// upstream and as Flink's KeySelector returning null: grouping it under
	// the null key would merge unrelated records silently. A key field
	// whose value is null is a key like any other.
	key, ok := in.Get(a.keyField)
	if !ok {
		return fmt.Errorf("aggregate %q: record has no key field %q: %s", a.id, a.keyField, in)
	}
	kg := state.KeyGroupFor(key, a.maxP)
	if !a.kgs.Contains(kg) {
		return fmt.Errorf("aggregate %q: record %s: key %s is in key group %d, outside this subtask's range %s (input not partitioned by %q?)",
			a.id, in, key, kg, a.kgs, a.keyField)
	}
	// Check every field before updating any accumulator, so that a bad
	// record leaves the state untouched.
	for i := range a.specs {
		sp := &a.specs[i]
		if sp.kind == aggCount {
			continue
		}
		if v, ok := in.Get(sp.field); ok {
			if k := v.Kind(); k != record.KindInt && k != record.KindFloat && k != record.KindNull {
				return fmt.Errorf("aggregate %q: field %q of record %s is a %s, want a number (for %q: %s)",
					a.id, sp.field, in, k, sp.out, sp.src)
			}
		}
	}
	a.keyBuf = key.AppendKey(a.keyBuf[:0])
	// st is valid until the next call of the store (a copy-on-write may
	// replace the entry), so it is not kept past this record.
	st := a.store.GetOrCreate(kg, a.keyBuf)
	if st.accs == nil {
		st.accs = make([]aggAcc, len(a.specs))
	}
	a.out.CopyFrom(in)
	for i := range a.specs {
		sp := &a.specs[i]
		acc := &st.accs[i]
		if sp.kind == aggCount {
			acc.n++
		} else if v, ok := in.Get(sp.field); ok && v.Kind() != record.KindNull {
			acc.add(sp.kind, v)
		}
		a.out.Set(sp.out, acc.result(sp.kind))
	}
	return out.Collect(&a.out)
}

// add folds the number v into the accumulator.
func (acc *aggAcc) add(kind aggKind, v record.Value) {
	switch kind {
	case aggSum, aggAvg:
		if i, isInt := v.AsInt(); isInt && !acc.float {
			sum := acc.isum + i // wraps on overflow, detected below
			// Signed overflow: both operands have the same sign and the
			// sum's sign differs.
			if (acc.isum >= 0) == (i >= 0) && (sum >= 0) != (i >= 0) {
				acc.float = true
				acc.fsum = float64(acc.isum) + float64(i)
			} else {
				acc.isum = sum
			}
		} else {
			f, _ := v.AsFloat()
			if !acc.float {
				acc.float = true
				acc.fsum = float64(acc.isum)
			}
			acc.fsum += f
		}
	case aggMin:
		if acc.n == 0 || numLess(v, acc.best()) {
			acc.setBest(v)
		}
	case aggMax:
		if acc.n == 0 || numLess(acc.best(), v) {
			acc.setBest(v)
		}
	}
	acc.n++
}

// result is the accumulator's current value for output.
func (acc *aggAcc) result(kind aggKind) record.Value {
	if kind == aggCount {
		return record.Int(acc.n)
	}
	if acc.n == 0 {
		return record.Null()
	}
	switch kind {
	case aggSum:
		if acc.float {
			return record.Float(acc.fsum)
		}
		return record.Int(acc.isum)
	case aggAvg:
		if acc.float {
			return record.Float(acc.fsum / float64(acc.n))
		}
		return record.Float(float64(acc.isum) / float64(acc.n))
	}
	return acc.best()
}

// best is the min or max so far, as it was (int or float).
func (acc *aggAcc) best() record.Value {
	if acc.float {
		return record.Float(acc.fsum)
	}
	return record.Int(acc.isum)
}

// setBest makes the number v the min or max so far.
func (acc *aggAcc) setBest(v record.Value) {
	if i, isInt := v.AsInt(); isInt {
		acc.float, acc.isum = false, i
		return
	}
	acc.float = true
	acc.fsum, _ = v.AsFloat()
}

// numLess compares two numbers: exactly when both are ints, else as floats.
func numLess(a, b record.Value) bool {
	ai, aInt := a.AsInt()
	bi, bInt := b.AsInt()
	if aInt && bInt {
		return ai < bi
	}
	af, _ := a.AsFloat()
	bf, _ := b.AsFloat()
	return af < bf
}

// aggStateV1 is the value format of aggregate's keyed state (the value
// format byte of state.WriteKeyGroup). A key's value is, per aggregate in
// output field order:
//
//	byte     the aggregate's kind (count, sum, min, max, avg: 0..4), checked
//	         on restore so that state of other aggregates is not misread
//	uvarint  n, the records counted or contributing
//	sum, avg:  byte 1 if the sum is a float, then the float's 8 bytes
//	           (little endian IEEE 754) or the int as a varint
//	min, max:  when n > 0, byte 1 and a varint for an int, byte 2 and 8
//	           bytes for a float
const aggStateV1 = 1

// SnapshotState takes a copy-on-write view of the keyed state
// (state.KeyedStore.Snapshot: O(key groups), whatever the number of keys)
// and returns a writer of its key groups. The writer releases the view
// after the last key group of the range, or at the first error (the
// runtime calls it once per key group in order and stops at an error); a
// view dropped unwritten (checkpoint canceled) is released by the garbage
// collector. Until released, the first update of each key copies it.
func (a *aggregateOp) SnapshotState(int64) (*operator.Snapshot, error) {
	snap := a.store.Snapshot()
	specs := a.specs // never changed after construction
	id, last := a.id, a.kgs.End
	return &operator.Snapshot{
		WriteKeyGroup: func(kg int, w io.Writer) error {
			err := snap.WriteKeyGroup(kg, w, aggStateV1, func(dst []byte, st *aggKeyState) []byte {
				return appendAggState(dst, specs, st)
			})
			if err != nil || kg == last {
				snap.Release()
			}
			if err != nil {
				return fmt.Errorf("aggregate %q: %w", id, err)
			}
			return nil
		},
	}, nil
}

func appendAggState(dst []byte, specs []aggSpec, st *aggKeyState) []byte {
	for i := range specs {
		acc := &st.accs[i]
		kind := specs[i].kind
		dst = append(dst, byte(kind))
		dst = binary.AppendUvarint(dst, uint64(acc.n))
		switch kind {
		case aggSum, aggAvg:
			if acc.float {
				dst = append(dst, 1)
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(acc.fsum))
			} else {
				dst = append(dst, 0)
				dst = binary.AppendVarint(dst, acc.isum)
			}
		case aggMin, aggMax:
			if acc.n == 0 {
				break
			}
			if !acc.float {
				dst = append(dst, 1)
				dst = binary.AppendVarint(dst, acc.isum)
			} else {
				dst = append(dst, 2)
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(acc.fsum))
			}
		}
	}
	return dst
}

// decodeAggState fills accs (one per spec) from what appendAggState wrote.
func decodeAggState(b []byte, specs []aggSpec, accs []aggAcc) error {
	for i := range specs {
		sp := &specs[i]
		acc := &accs[i]
		if len(b) == 0 {
			return fmt.Errorf("value ends before aggregate %q", sp.out)
		}
		if aggKind(b[0]) != sp.kind {
			return fmt.Errorf("aggregate %q is %s, but the state holds aggregate kind %d (were the aggregates changed?)", sp.out, sp.src, b[0])
		}
		b = b[1:]
		n, k := binary.Uvarint(b)
		if k <= 0 || n > math.MaxInt64 {
			return fmt.Errorf("bad count for aggregate %q", sp.out)
		}
		acc.n, b = int64(n), b[k:]
		var err error
		switch sp.kind {
		case aggSum, aggAvg:
			var tag byte
			if tag, b, err = cutByte(b); err != nil {
				break
			}
			switch tag {
			case 0:
				acc.isum, b, err = cutVarint(b)
			case 1:
				acc.float = true
				acc.fsum, b, err = cutFloat(b)
			default:
				err = fmt.Errorf("bad sum tag %d", tag)
			}
		case aggMin, aggMax:
			if acc.n == 0 {
				break
			}
			var tag byte
			if tag, b, err = cutByte(b); err != nil {
				break
			}
			switch tag {
			case 1:
				acc.isum, b, err = cutVarint(b)
			case 2:
				acc.float = true
				acc.fsum, b, err = cutFloat(b)
			default:
				err = fmt.Errorf("bad value tag %d", tag)
			}
		}
		if err != nil {
			return fmt.Errorf("aggregate %q: %w", sp.out, err)
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("%d bytes after the last aggregate (were aggregates removed?)", len(b))
	}
	return nil
}

var errShortValue = errors.New("value too short")

func cutByte(b []byte) (byte, []byte, error) {
	if len(b) < 1 {
		return 0, b, errShortValue
	}
	return b[0], b[1:], nil
}

func cutVarint(b []byte) (int64, []byte, error) {
	v, k := binary.Varint(b)
	if k <= 0 {
		return 0, b, errShortValue
	}
	return v, b[k:], nil
}

func cutFloat(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, b, errShortValue
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
}

// RestoreState reads the key groups of this subtask's range into the
// store. A key present twice is an error: key groups never overlap, so it
// means corrupt or mixed-up state.
func (a *aggregateOp) RestoreState(r *operator.RestoredState) error {
	if r.KeyGroups == nil {
		return nil
	}
	nacc := len(a.specs)
	return r.KeyGroups(func(kg int, rd io.Reader) error {
		if !a.kgs.Contains(kg) {
			return fmt.Errorf("aggregate %q: restore checkpoint %d: key group %d is outside this subtask's range %s", a.id, r.CheckpointID, kg, a.kgs)
		}
		err := state.ReadKeyGroup(rd, func(format byte, key, value []byte) error {
			if format != aggStateV1 {
				return fmt.Errorf("unknown value format %d (want %d)", format, aggStateV1)
			}
			if a.store.Contains(kg, key) {
				return fmt.Errorf("key %q appears twice", key)
			}
			st := a.store.GetOrCreate(kg, key)
			st.accs = make([]aggAcc, nacc)
			if err := decodeAggState(value, a.specs, st.accs); err != nil {
				return fmt.Errorf("key %q: %w", key, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("aggregate %q: restore checkpoint %d: key group %d: %w", a.id, r.CheckpointID, kg, err)
		}
		return nil
	})
}

func (a *aggregateOp) EndInput(operator.Collector) error { return nil }

func (a *aggregateOp) Close() error { return nil }
