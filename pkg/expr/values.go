package expr

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/weirstream/weir/pkg/record"
)

// recordMap is a *record.Record seen by CEL as a map(string, dyn). It is a
// conversion of the pointer, not a wrapper, so presenting a record (or a
// nested map of one) to CEL does not allocate; fields are converted to CEL
// values only when read.
type recordMap record.Record

var (
	_ traits.Mapper = (*recordMap)(nil)
	_ traits.Zeroer = (*recordMap)(nil)
)

func (m *recordMap) rec() *record.Record { return (*record.Record)(m) }

// toCEL converts a record value to a CEL value.
func toCEL(v record.Value) ref.Val {
	switch v.Kind() {
	case record.KindBool:
		b, _ := v.AsBool()
		return types.Bool(b)
	case record.KindInt:
		i, _ := v.AsInt()
		return types.Int(i)
	case record.KindFloat:
		f, _ := v.AsFloat()
		return types.Double(f)
	case record.KindString:
		s, _ := v.AsString()
		return types.String(s)
	case record.KindList:
		// A view, converting an element when it is read: reading a list
		// costs CEL one unit whatever its length, so a copy here would let
		// `record.l.map(x, record.l)` allocate the square of the list for
		// a cost proportional to it. CEL's own list type over the values
		// gives every list operation its exact semantics.
		vs, _ := v.AsList()
		return recordList(vs)
	case record.KindMap:
		r, _ := v.AsMap()
		return (*recordMap)(r)
	}
	return types.NullValue
}

// recordList is a record's list seen by CEL: reading an element converts
// it alone, and iterating allocates nothing per element beyond CEL's own
// boxing of the value. The operations that are not reads are CEL's own,
// on a list over the same values (base).
type recordList []record.Value

var (
	_ traits.Lister = recordList(nil)
	_ traits.Zeroer = recordList(nil)
)

func (l recordList) base() traits.Lister {
	return types.NewDynamicList(valueAdapter{}, []record.Value(l))
}

// Get implements traits.Indexer.
func (l recordList) Get(index ref.Val) ref.Val {
	if i, ok := index.(types.Int); ok && i >= 0 && int64(i) < int64(len(l)) {
		return toCEL(l[i])
	}
	return l.base().Get(index) // CEL's conversions and errors
}

// Contains implements traits.Container (the `in` operator).
func (l recordList) Contains(v ref.Val) ref.Val {
	for _, e := range l {
		if v.Equal(toCEL(e)) == types.True {
			return types.True
		}
	}
	return types.False
}

// Iterator implements traits.Iterable.
func (l recordList) Iterator() traits.Iterator { return &listIterator{l: l} }

// Size implements traits.Sizer.
func (l recordList) Size() ref.Val { return types.Int(len(l)) }

// IsZeroValue implements traits.Zeroer.
func (l recordList) IsZeroValue() bool { return len(l) == 0 }

// Add implements traits.Adder: CEL's concatenation, which copies nothing.
func (l recordList) Add(other ref.Val) ref.Val { return l.base().Add(other) }

// Equal implements ref.Val.
func (l recordList) Equal(other ref.Val) ref.Val { return l.base().Equal(other) }

// ConvertToNative implements ref.Val.
func (l recordList) ConvertToNative(t reflect.Type) (any, error) { return l.base().ConvertToNative(t) }

// ConvertToType implements ref.Val.
func (l recordList) ConvertToType(t ref.Type) ref.Val { return l.base().ConvertToType(t) }

// Type implements ref.Val.
func (l recordList) Type() ref.Type { return types.ListType }

// Value implements ref.Val: the []record.Value, which toValue shares.
func (l recordList) Value() any { return []record.Value(l) }

// String returns CEL's form of the list, for error messages.
func (l recordList) String() string { return fmt.Sprint(l.base()) }

type listIterator struct {
	l recordList
	i int
}

func (it *listIterator) HasNext() ref.Val { return types.Bool(it.i < len(it.l)) }

func (it *listIterator) Next() ref.Val {
	if it.i >= len(it.l) {
		return nil
	}
	it.i++
	return toCEL(it.l[it.i-1])
}

func (it *listIterator) ConvertToNative(reflect.Type) (any, error) {
	return nil, fmt.Errorf("type conversion on iterators not supported")
}
func (it *listIterator) ConvertToType(ref.Type) ref.Val { return types.NewErr("no such overload") }
func (it *listIterator) Equal(ref.Val) ref.Val          { return types.NewErr("no such overload") }
func (it *listIterator) Type() ref.Type                 { return types.IteratorType }
func (it *listIterator) Value() any                     { return nil }

// valueAdapter converts the elements of a record list for CEL (base).
type valueAdapter struct{}

func (valueAdapter) NativeToValue(v any) ref.Val {
	if rv, ok := v.(record.Value); ok {
		return toCEL(rv)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// Find implements traits.Mapper: only string keys can be present.
func (m *recordMap) Find(key ref.Val) (ref.Val, bool) {
	s, ok := key.(types.String)
	if !ok {
		if types.IsUnknownOrError(key) {
			return key, false
		}
		return nil, false
	}
	v, ok := m.rec().Get(string(s))
	if !ok {
		return nil, false
	}
	return toCEL(v), true
}

// Get implements traits.Indexer.
func (m *recordMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container (the `in` operator).
func (m *recordMap) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

// Size implements traits.Sizer.
func (m *recordMap) Size() ref.Val { return types.Int(m.rec().Len()) }

// IsZeroValue implements traits.Zeroer.
func (m *recordMap) IsZeroValue() bool { return m.rec().Len() == 0 }

// Iterator implements traits.Iterable: field names in record order.
func (m *recordMap) Iterator() traits.Iterator { return &fieldIterator{fields: m.rec().Fields} }

// Type implements ref.Val.
func (m *recordMap) Type() ref.Type { return types.MapType }

// Value implements ref.Val: the *record.Record.
func (m *recordMap) Value() any { return m.rec() }

// ConvertToType implements ref.Val.
func (m *recordMap) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return m
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", types.MapType, t)
}

var (
	anyType       = reflect.TypeFor[any]()
	recordPtrType = reflect.TypeFor[*record.Record]()
	stringAnyType = reflect.TypeFor[map[string]any]()
)

// ConvertToNative implements ref.Val; only the Go types a CEL function
// over a record could reasonably want are supported.
func (m *recordMap) ConvertToNative(t reflect.Type) (any, error) {
	switch t {
	case recordPtrType:
		return m.rec(), nil
	case anyType, stringAnyType:
		out := make(map[string]any, m.rec().Len())
		for _, f := range m.rec().Fields {
			v, err := toCEL(f.Value).ConvertToNative(anyType)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.Name, err)
			}
			out[f.Name] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("type conversion error from map to '%v'", t)
}

// Equal implements ref.Val with CEL's map equality: same size and, for
// every key, an equal value (order does not matter in CEL).
func (m *recordMap) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Mapper)
	if !ok {
		return types.False
	}
	if o.Size() != m.Size() {
		return types.False
	}
	for _, f := range m.rec().Fields {
		ov, found := o.Find(types.String(f.Name))
		if !found {
			return types.False
		}
		if types.Equal(toCEL(f.Value), ov) != types.True {
			return types.False
		}
	}
	return types.True
}

// String returns the record's JSON form, for CEL's error messages.
func (m *recordMap) String() string { return m.rec().String() }

// fieldIterator iterates over a record's field names.
type fieldIterator struct {
	fields []record.Field
	i      int
}

func (it *fieldIterator) HasNext() ref.Val { return types.Bool(it.i < len(it.fields)) }

func (it *fieldIterator) Next() ref.Val {
	if it.i >= len(it.fields) {
		return nil
	}
	it.i++
	return types.String(it.fields[it.i-1].Name)
}

func (it *fieldIterator) ConvertToNative(reflect.Type) (any, error) {
	return nil, fmt.Errorf("type conversion on iterators not supported")
}
func (it *fieldIterator) ConvertToType(ref.Type) ref.Val { return types.NewErr("no such overload") }
func (it *fieldIterator) Equal(ref.Val) ref.Val          { return types.NewErr("no such overload") }
func (it *fieldIterator) Type() ref.Type                 { return types.IteratorType }
func (it *fieldIterator) Value() any                     { return nil }

// mapInto writes the fields of CEL map m to out, which is empty, in a
// deterministic order (see the package doc). Keys must be strings.
func (p *Program) mapInto(m traits.Mapper, out *record.Record) error {
	if rm, ok := m.(*recordMap); ok {
		// Fields of a record are immutable values: sharing them is safe.
		out.CopyFrom(rm.rec())
		return nil
	}
	size := 0
	if n, ok := m.Size().(types.Int); ok {
		size = int(n)
	}
	keys := p.orderFor(m, size)
	if keys == nil {
		// No map literal matches: sort the keys. p.keys is used as a
		// stack so that nested maps reuse it too.
		start := len(p.keys)
		defer func() { p.keys = p.keys[:start] }()
		it := m.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			if _, ok := k.(types.String); !ok {
				return fmt.Errorf("map key %v is %s, want string", k, k.Type().TypeName())
			}
			p.keys = append(p.keys, k)
		}
		keys = p.keys[start:]
		slices.SortFunc(keys, func(a, b ref.Val) int {
			return strings.Compare(string(a.(types.String)), string(b.(types.String)))
		})
	}
	for _, k := range keys {
		name := string(k.(types.String))
		cv, found := m.Find(k)
		if !found {
			return fmt.Errorf("map key %q vanished during conversion", name)
		}
		v, err := p.toValue(cv)
		if err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
		out.Fields = append(out.Fields, record.Field{Name: name, Value: v})
	}
	return nil
}

// orderFor returns the keys of a map literal of the expression that are
// exactly the keys of m, or nil.
func (p *Program) orderFor(m traits.Mapper, size int) []ref.Val {
	for _, keys := range p.keyOrders {
		if len(keys) != size {
			continue
		}
		all := true
		for _, k := range keys {
			if _, found := m.Find(k); !found {
				all = false
				break
			}
		}
		if all {
			return keys
		}
	}
	return nil
}

// convertCost is what converting one value costs: a record.Value and its
// share of a record's fields are about 100 bytes, so that conversion
// allocates no more per unit than CEL's own string building.
const convertCost = 2

// toValue converts a CEL result to a record value, convertCost units of
// p.budget per value.
func (p *Program) toValue(v ref.Val) (record.Value, error) {
	if p.budget < convertCost {
		return record.Value{}, errConvertBudget
	}
	p.budget -= convertCost
	switch x := v.(type) {
	case types.Null:
		return record.Null(), nil
	case types.Bool:
		return record.Bool(bool(x)), nil
	case types.Int:
		return record.Int(int64(x)), nil
	case types.Uint:
		if uint64(x) > math.MaxInt64 {
			return record.Value{}, fmt.Errorf("uint %d does not fit in an int", uint64(x))
		}
		return record.Int(int64(x)), nil
	case types.Double:
		return record.Float(float64(x)), nil
	case types.String:
		return record.String(string(x)), nil
	case types.Timestamp, types.Duration:
		// Records have no time type: use CEL's string form, which
		// timestamp() and duration() read back.
		if s, ok := x.ConvertToType(types.StringType).(types.String); ok {
			return record.String(string(s)), nil
		}
	case *types.Optional:
		if !x.HasValue() {
			return record.Null(), nil
		}
		return p.toValue(x.GetValue())
	case *recordMap:
		if x == p.act.in {
			// The input record is reused by the caller after evaluation:
			// copied, once however often the result contains it.
			if p.inCopy == nil {
				p.inCopy = x.rec().Clone()
			}
			return record.Map(p.inCopy), nil
		}
		return record.Map(x.rec()), nil
	case traits.Mapper:
		r := &record.Record{}
		if err := p.mapInto(x, r); err != nil {
			return record.Value{}, err
		}
		return record.Map(r), nil
	case traits.Lister:
		if vs, ok := x.(recordList); ok {
			// A list of a record (toCEL's view): its values are immutable,
			// so it is shared, not copied.
			return record.List([]record.Value(vs)), nil
		}
		n, _ := x.Size().(types.Int)
		// A list CEL built by concatenation shares its parts: its size
		// can be far beyond what it cost. Check before allocating.
		if n < 0 || uint64(n) > p.budget/convertCost {
			return record.Value{}, errConvertBudget
		}
		vs := make([]record.Value, n)
		for i := range vs {
			ev, err := p.toValue(x.Get(types.Int(i)))
			if err != nil {
				return record.Value{}, fmt.Errorf("list element %d: %w", i, err)
			}
			vs[i] = ev
		}
		return record.List(vs), nil
	}
	if types.IsUnknownOrError(v) {
		return record.Value{}, fmt.Errorf("%v", v)
	}
	return record.Value{}, fmt.Errorf("a value of type %s cannot be stored in a record", v.Type().TypeName())
}
