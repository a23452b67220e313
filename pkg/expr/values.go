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
		// Converted eagerly: lists in records are rarer than fields, and
		// CEL's own list then gives every list operation its exact
		// semantics.
		vs, _ := v.AsList()
		elems := make([]ref.Val, len(vs))
		for i, e := range vs {
			elems[i] = toCEL(e)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems)
	case record.KindMap:
		r, _ := v.AsMap()
		return (*recordMap)(r)
	}
	return types.NullValue
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

// toValue converts a CEL result to a record value.
func (p *Program) toValue(v ref.Val) (record.Value, error) {
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
			// The input record is reused by the caller after evaluation.
			return record.Map(x.rec().Clone()), nil
		}
		return record.Map(x.rec()), nil
	case traits.Mapper:
		r := &record.Record{}
		if err := p.mapInto(x, r); err != nil {
			return record.Value{}, err
		}
		return record.Map(r), nil
	case traits.Lister:
		n, _ := x.Size().(types.Int)
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
