package record

import (
	"math"
	"strconv"
	"unsafe"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds of Value. Their numbers are written in the binary form and in
// AppendKey, so they must never change.
const (
	KindNull   Kind = 0
	KindBool   Kind = 1
	KindInt    Kind = 2
	KindFloat  Kind = 3
	KindString Kind = 4
	KindList   Kind = 5
	KindMap    Kind = 6
)

var kindNames = [...]string{"null", "bool", "int", "float", "string", "list", "map"}

// String returns the kind's lower-case name, e.g. "int".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

func (k Kind) valid() bool { return k <= KindMap }

// Value is one JSON-like value: null, bool, int64, float64, string, list or
// map (a nested *Record). The zero Value is Null. Values are small and are
// passed by value; see the package doc for why they must be treated as
// immutable.
//
// A Value is 24 bytes, not the 64 that a string, a slice and a pointer side
// by side would take: records are slices of fields, decoded, copied and
// scanned for every record on the hot path, so their size is their cost.
// The price is unsafe.Pointer, confined to the constructors and the three
// accessors below: ptr points at a string's bytes, a list's first element
// or a map's Record (keeping them alive for the collector as the string,
// slice or pointer would), num holds a string's or list's length.
type Value struct {
	ptr  unsafe.Pointer // string bytes, first list element, or *Record
	num  uint64         // bool (0/1), int64 or float64 bits; string or list length
	kind Kind
}

func (v Value) str() string { return unsafe.String((*byte)(v.ptr), int(v.num)) }

// list returns a list's elements, with their capacity cut to their length
// (the constructor's slice may have had more; it is not reachable here).
func (v Value) list() []Value { return unsafe.Slice((*Value)(v.ptr), int(v.num)) }

func (v Value) rec() *Record { return (*Record)(v.ptr) }

// Null returns the null value.
func Null() Value { return Value{} }

// Bool returns a bool value.
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.num = 1
	}
	return v
}

// Int returns an int value.
func Int(i int64) Value { return Value{kind: KindInt, num: uint64(i)} }

// Float returns a float value.
func Float(f float64) Value { return Value{kind: KindFloat, num: math.Float64bits(f)} }

// String returns a string value.
func String(s string) Value {
	return Value{kind: KindString, ptr: unsafe.Pointer(unsafe.StringData(s)), num: uint64(len(s))}
}

// List returns a list value holding vs (not copied: vs must not be modified
// afterwards).
func List(vs []Value) Value {
	return Value{kind: KindList, ptr: unsafe.Pointer(unsafe.SliceData(vs)), num: uint64(len(vs))}
}

// Map returns a map value holding r (not copied: r must not be modified
// afterwards). A nil r is an empty map.
func Map(r *Record) Value {
	if r == nil {
		r = &Record{}
	}
	return Value{kind: KindMap, ptr: unsafe.Pointer(r)}
}

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.kind }

// AsBool returns v's bool and whether v is a bool.
func (v Value) AsBool() (bool, bool) { return v.num != 0, v.kind == KindBool }

// AsInt returns v's int and whether v is an int.
func (v Value) AsInt() (int64, bool) {
	if v.kind != KindInt {
		return 0, false
	}
	return int64(v.num), true
}

// AsFloat returns v as a float64 and whether v is a float or an int (ints
// are converted, possibly losing precision beyond 2^53).
func (v Value) AsFloat() (float64, bool) {
	switch v.kind {
	case KindFloat:
		return math.Float64frombits(v.num), true
	case KindInt:
		return float64(int64(v.num)), true
	}
	return 0, false
}

// AsString returns v's string and whether v is a string.
func (v Value) AsString() (string, bool) {
	if v.kind != KindString {
		return "", false
	}
	return v.str(), true
}

// AsList returns v's elements and whether v is a list. The slice is shared
// and must not be modified.
func (v Value) AsList() ([]Value, bool) {
	if v.kind != KindList {
		return nil, false
	}
	return v.list(), true
}

// AsMap returns v's record and whether v is a map. The record is shared and
// must not be modified.
func (v Value) AsMap() (*Record, bool) {
	if v.kind != KindMap {
		return nil, false
	}
	if v.rec() == nil {
		return &Record{}, true
	}
	return v.rec(), true
}

// mapFields returns the fields of a map value, tolerating a nil rec (which
// only a zero-ish Value built inside this package could have).
func (v Value) mapFields() []Field {
	if v.rec() == nil {
		return nil
	}
	return v.rec().Fields
}

// canonicalNaN is the bit pattern every NaN is keyed and hashed as, the one
// Java's Double.doubleToLongBits uses.
const canonicalNaN = 0x7ff8000000000000

func floatKeyBits(bits uint64) uint64 {
	if f := math.Float64frombits(bits); f != f {
		return canonicalNaN
	}
	return bits
}

// Equal reports whether a and b are the same value: same kind, and for
// floats the same bits (every NaN equal to every NaN), for maps the same
// fields in the same order. See the package doc.
func Equal(a, b Value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case KindNull:
		return true
	case KindBool, KindInt:
		return a.num == b.num
	case KindFloat:
		return floatKeyBits(a.num) == floatKeyBits(b.num)
	case KindString:
		return a.str() == b.str()
	case KindList:
		if len(a.list()) != len(b.list()) {
			return false
		}
		for i := range a.list() {
			if !Equal(a.list()[i], b.list()[i]) {
				return false
			}
		}
		return true
	case KindMap:
		return fieldsEqual(a.mapFields(), b.mapFields())
	}
	return false
}

func fieldsEqual(a, b []Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// AppendKey appends canonical bytes identifying v to dst, for keys of state
// maps: equal values (per Equal) append equal bytes, and different values
// different bytes. The encoding is kind-tagged (Int(5) and Float(5) differ)
// and self-delimiting, and is stable across versions because it is stored
// in snapshots:
//
//	null   tag
//	bool   tag, 0 or 1
//	int    tag, 8 bytes big-endian
//	float  tag, 8 bytes big-endian IEEE bits (NaN canonicalised)
//	string tag, uvarint length, bytes
//	list   tag, uvarint count, elements
//	map    tag, uvarint count, per field: uvarint name length, name, value
func (v Value) AppendKey(dst []byte) []byte {
	dst = append(dst, byte(v.kind))
	switch v.kind {
	case KindBool:
		dst = append(dst, byte(v.num))
	case KindInt:
		dst = appendBE64(dst, v.num)
	case KindFloat:
		dst = appendBE64(dst, floatKeyBits(v.num))
	case KindString:
		dst = appendUvarint(dst, uint64(len(v.str())))
		dst = append(dst, v.str()...)
	case KindList:
		dst = appendUvarint(dst, uint64(len(v.list())))
		for _, e := range v.list() {
			dst = e.AppendKey(dst)
		}
	case KindMap:
		fs := v.mapFields()
		dst = appendUvarint(dst, uint64(len(fs)))
		for _, f := range fs {
			dst = appendUvarint(dst, uint64(len(f.Name)))
			dst = append(dst, f.Name...)
			dst = f.Value.AppendKey(dst)
		}
	}
	return dst
}

// Hash64 returns a hash of v that is stable across processes, runs and
// machines: FNV-1a (fixed offset basis) over the bytes AppendKey would
// append, finished with murmur3's fmix64 so that the low bits used for
// key groups are well mixed. It does not allocate.
func (v Value) Hash64() uint64 {
	return fmix64(v.hashKey(fnvOffset))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashKey feeds exactly the bytes of AppendKey into FNV-1a state h, without
// materialising them. TestHashMatchesKey keeps the two in step.
func (v Value) hashKey(h uint64) uint64 {
	h = fnvByte(h, byte(v.kind))
	switch v.kind {
	case KindBool:
		h = fnvByte(h, byte(v.num))
	case KindInt:
		h = fnvBE64(h, v.num)
	case KindFloat:
		h = fnvBE64(h, floatKeyBits(v.num))
	case KindString:
		h = fnvUvarint(h, uint64(len(v.str())))
		h = fnvString(h, v.str())
	case KindList:
		h = fnvUvarint(h, uint64(len(v.list())))
		for _, e := range v.list() {
			h = e.hashKey(h)
		}
	case KindMap:
		fs := v.mapFields()
		h = fnvUvarint(h, uint64(len(fs)))
		for _, f := range fs {
			h = fnvUvarint(h, uint64(len(f.Name)))
			h = fnvString(h, f.Name)
			h = f.Value.hashKey(h)
		}
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

func fnvBE64(h uint64, x uint64) uint64 {
	for shift := 56; shift >= 0; shift -= 8 {
		h = fnvByte(h, byte(x>>uint(shift)))
	}
	return h
}

func fnvUvarint(h uint64, x uint64) uint64 {
	for x >= 0x80 {
		h = fnvByte(h, byte(x)|0x80)
		x >>= 7
	}
	return fnvByte(h, byte(x))
}

// fmix64 is murmur3's 64-bit finalizer.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

func appendBE64(dst []byte, x uint64) []byte {
	return append(dst, byte(x>>56), byte(x>>48), byte(x>>40), byte(x>>32),
		byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

func appendUvarint(dst []byte, x uint64) []byte {
	for x >= 0x80 {
		dst = append(dst, byte(x)|0x80)
		x >>= 7
	}
	return append(dst, byte(x))
}

// String returns v in JSON form, for messages.
func (v Value) String() string { return string(v.AppendJSON(nil)) }
