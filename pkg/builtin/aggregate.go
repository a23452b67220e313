package builtin

import (
	"fmt"
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
			{Name: "aggregates", Required: true, Description: "map of output field to count, sum(f), min(f), max(f) or avg(f); per key of the hash input, each input record is emitted with the running values set"},
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

// aggAcc is the running value of one aggregate for one key.
type aggAcc struct {
	n     int64 // records counted (count) or contributing (others)
	isum  int64
	fsum  float64
	float bool         // the sum is in fsum: a float was added, or ints overflowed
	best  record.Value // min or max so far
}

// aggKeyState is the state of one key: one accumulator per spec, allocated
// when the key is first seen.
type aggKeyState struct {
	accs []aggAcc
}

// aggregateOp keeps running aggregates per key of its hash-partitioned
// input, in a state.KeyedStore by key group.
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
	a.store = state.NewKeyedStore[aggKeyState](ctx.KeyGroups)
	return nil
}

func (a *aggregateOp) ProcessRecord(in *record.Record, out operator.Collector) error {
	// A missing key field is the null key, as for the hash partitioner
	// (Get returns the null Value).
	key, _ := in.Get(a.keyField)
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
		if acc.n == 0 || numLess(v, acc.best) {
			acc.best = v
		}
	case aggMax:
		if acc.n == 0 || numLess(acc.best, v) {
			acc.best = v
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
	return acc.best
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

func (a *aggregateOp) EndInput(operator.Collector) error { return nil }

func (a *aggregateOp) Close() error { return nil }
