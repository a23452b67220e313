package expr

import (
	"math"
	"strings"
	"unicode/utf8"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"

	"github.com/weirstream/weir/pkg/record"
)

// The fast path. An expression (or a value of a map literal) made only of
// the subset below is compiled, after cel-go has type-checked it, to a tree
// of Go closures that read the input record's values directly: no CEL
// activation, no boxing of values into ref.Val, no allocation.
//
//   - literals: int, uint, double, string, bool, null;
//   - field reads from `record`: `record.f`, `record["f"]`, `record.a.b`,
//     and has() of them;
//   - + - * / % and unary - on ints, uints and doubles (+ on strings),
//     with CEL's overflow and division rules;
//   - == != < <= > >= between ints, uints, doubles (mixed as CEL compares
//     them), strings, bools and null (== and != only);
//   - && || ! and the conditional ?:;
//   - int() and double() of numbers, size() of a string, list or map, and
//     startsWith, endsWith and contains on strings.
//
// The closures never produce an error. Whenever a value is not the plain
// case, anything that could make CEL's result differ from plain Go (a
// missing field, a value of another type than the operator takes, an
// overflow, a division by zero, a NaN ordered, a list compared), they
// give up ("miss") and the caller evaluates the same expression with CEL,
// which gives its own result or error, message included. An expression has
// no side effects, so evaluating it again is unobservable. The fast path is
// therefore exact by construction as long as every value it does produce
// is CEL's, which TestFastPathMatchesCEL and FuzzFastPathMatchesCEL check
// against CEL itself.
//
// && and || need no care beyond that: a fast && gives false as soon as its
// left side is false (CEL too, whatever the right side is), and misses as
// soon as a side is not a plain bool, so CEL sees every case where its
// commutative error rules matter.
//
// It is used only where the untracked program would be (p.tracked == nil):
// a tracked expression must count its cost exactly as the meter does.

// typ is the static type of a compiled node.
type typ uint8

const (
	tDyn    typ = iota // a *record.Value, kind known at run time (a field read)
	tBool              // b
	tInt               // i
	tUint              // u
	tDouble            // d
	tString            // s
)

// fastCtx is what the closures evaluate on: the input record and, per
// field read, where the field was found the last time. Records from one
// edge usually have their fields in the same order, so the hint turns a
// scan by name into one string comparison. It belongs to one Program (one
// goroutine): the compiled closures are shared by clones.
type fastCtx struct {
	in    *record.Record
	hints []fieldHint
	// vals holds the record values computed by dynamic nodes (a sum of
	// two fields), which return pointers: a record.Value is too large to
	// pass around by value at this speed. Cleared after each evaluation:
	// they may hold the input's strings.
	vals []record.Value
}

// node is one compiled expression: exactly the function of its type is
// set. The bool result is false when the node misses; a dynamic node
// returns nil then.
type node struct {
	t typ
	b func(*fastCtx) (bool, bool)
	i func(*fastCtx) (int64, bool)
	u func(*fastCtx) (uint64, bool)
	d func(*fastCtx) (float64, bool)
	s func(*fastCtx) (string, bool)
	v func(*fastCtx) *record.Value

	// What the operators specialize on, saving a closure call per
	// operand: an int constant (konst), and a read of a top-level field
	// (field, with its hint slot).
	konst  bool // an int constant, ki
	ki     int64
	dkonst bool // a double constant, kd
	kd     float64
	field  string
	hint   int
}

// fieldHint is where a field read found its field the last time, and the
// name as the record spelled it: records of one edge share their name
// strings (Go constants in a source, interned by the Decoder), so that
// comparing with it is a pointer comparison, where comparing with the
// expression's own copy of the name would compare bytes. name always has
// the content of the name read.
type fieldHint struct {
	pos  int
	name string
}

// fastCompiler compiles expressions of one Program, naming the hint slots
// of its field reads and numbering the value slots of its dynamic nodes.
type fastCompiler struct {
	hints []string // the field name of each hint slot
	vals  int
}

// hint returns a new hint slot for reading the field name.
func (fc *fastCompiler) hint(name string) int {
	fc.hints = append(fc.hints, name)
	return len(fc.hints) - 1
}

// newHints returns the initial hints of slots named names.
func newHints(names []string) []fieldHint {
	hs := make([]fieldHint, len(names))
	for i, n := range names {
		hs[i].name = n
	}
	return hs
}

// slot returns a new index into fastCtx.vals.
func (fc *fastCompiler) slot() int {
	fc.vals++
	return fc.vals - 1
}

// compile returns the node of x, or false if x is outside the subset.
func (fc *fastCompiler) compile(x celast.Expr) (node, bool) {
	switch x.Kind() {
	case celast.LiteralKind:
		return constNode(x.AsLiteral())
	case celast.SelectKind:
		s := x.AsSelect()
		if s.IsTestOnly() {
			return fc.has(s)
		}
		return fc.field(x)
	case celast.CallKind:
		return fc.call(x)
	}
	return node{}, false
}

func constNode(l any) (node, bool) {
	switch c := l.(type) {
	case types.Bool:
		return node{t: tBool, b: func(*fastCtx) (bool, bool) { return bool(c), true }}, true
	case types.Int:
		return node{t: tInt, i: func(*fastCtx) (int64, bool) { return int64(c), true }, konst: true, ki: int64(c)}, true
	case types.Uint:
		return node{t: tUint, u: func(*fastCtx) (uint64, bool) { return uint64(c), true }}, true
	case types.Double:
		return node{t: tDouble, d: func(*fastCtx) (float64, bool) { return float64(c), true }, dkonst: true, kd: float64(c)}, true
	case types.String:
		return node{t: tString, s: func(*fastCtx) (string, bool) { return string(c), true }}, true
	case types.Null:
		null := record.Null()
		return node{t: tDyn, v: func(*fastCtx) *record.Value { return &null }}, true
	}
	return node{}, false
}

// field compiles a read of a field path from `record`.
func (fc *fastCompiler) field(x celast.Expr) (node, bool) {
	path, ok := fieldPath(x)
	if !ok {
		return node{}, false
	}
	first := len(fc.hints)
	for _, name := range path {
		fc.hint(name)
	}
	if len(path) == 1 {
		return node{t: tDyn, v: func(c *fastCtx) *record.Value {
			return getField(c.in, &c.hints[first])
		}, field: path[0], hint: first}, true
	}
	n := len(path)
	return node{t: tDyn, v: func(c *fastCtx) *record.Value {
		return getPath(c.in, c.hints[first:first+n])
	}}, true
}

// has compiles has(record.a...f): the record or map the path before f
// leads to must exist, as CEL reads it.
func (fc *fastCompiler) has(s celast.SelectExpr) (node, bool) {
	name := s.FieldName()
	op := s.Operand()
	if op.Kind() == celast.IdentKind {
		if op.AsIdent() != varName {
			return node{}, false
		}
		h := fc.hint(name)
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			return getField(c.in, &c.hints[h]) != nil, true
		}}, true
	}
	parent, ok := fc.field(op)
	if !ok {
		return node{}, false
	}
	h := fc.hint(name)
	return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
		v := parent.v(c)
		if v == nil || v.Kind() != record.KindMap {
			return false, false
		}
		m, _ := v.AsMap()
		return getField(m, &c.hints[h]) != nil, true
	}}, true
}

// getField returns the value of the field h names in r, or nil, trying
// first where it was found last time. The value is r's own: read, never
// written.
func getField(r *record.Record, h *fieldHint) *record.Value {
	fs := r.Fields
	if h.pos < len(fs) && fs[h.pos].Name == h.name {
		return &fs[h.pos].Value
	}
	for i := range fs {
		if fs[i].Name == h.name {
			h.pos, h.name = i, fs[i].Name
			return &fs[i].Value
		}
	}
	return nil
}

// getPath reads the field path of hints, one hint per step.
func getPath(r *record.Record, hints []fieldHint) *record.Value {
	v := getField(r, &hints[0])
	for i := 1; i < len(hints); i++ {
		if v == nil || v.Kind() != record.KindMap {
			return nil
		}
		m, _ := v.AsMap()
		v = getField(m, &hints[i])
	}
	return v
}

func (fc *fastCompiler) call(x celast.Expr) (node, bool) {
	c := x.AsCall()
	args := c.Args()
	if c.IsMemberFunction() {
		return fc.member(c.FunctionName(), c.Target(), args)
	}
	fn := c.FunctionName()
	switch {
	case fn == operators.Index:
		return fc.field(x)
	case len(args) == 1:
		a, ok := fc.compile(args[0])
		if !ok {
			return node{}, false
		}
		switch fn {
		case operators.LogicalNot:
			b, ok := asBool(a)
			if !ok {
				return node{}, false
			}
			return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
				v, ok := b(c)
				return !v, ok
			}}, true
		case operators.Negate:
			return fc.negate(a)
		case overloads.TypeConvertInt:
			return toInt(a)
		case overloads.TypeConvertDouble:
			return toDouble(a)
		case overloads.Size:
			return size(a)
		}
		return node{}, false
	case len(args) == 3 && fn == operators.Conditional:
		return fc.conditional(args)
	case len(args) != 2:
		return node{}, false
	}
	l, ok := fc.compile(args[0])
	if !ok {
		return node{}, false
	}
	r, ok := fc.compile(args[1])
	if !ok {
		return node{}, false
	}
	switch fn {
	case operators.LogicalAnd, operators.LogicalOr:
		return logical(fn == operators.LogicalAnd, l, r)
	case operators.Add, operators.Subtract, operators.Multiply, operators.Divide, operators.Modulo:
		return fc.arith(fn, l, r)
	case operators.Equals, operators.NotEquals:
		return equality(fn == operators.NotEquals, l, r)
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		return ordering(fn, l, r)
	}
	return node{}, false
}

// member compiles the string functions called as methods.
func (fc *fastCompiler) member(fn string, target celast.Expr, args []celast.Expr) (node, bool) {
	var f func(s, sub string) bool
	switch fn {
	case overloads.StartsWith:
		f = strings.HasPrefix
	case overloads.EndsWith:
		f = strings.HasSuffix
	case overloads.Contains:
		f = strings.Contains
	default:
		return node{}, false
	}
	if len(args) != 1 {
		return node{}, false
	}
	t, ok := fc.compile(target)
	if !ok {
		return node{}, false
	}
	a, ok := fc.compile(args[0])
	if !ok {
		return node{}, false
	}
	ts, ok1 := asString(t)
	as, ok2 := asString(a)
	if !ok1 || !ok2 {
		return node{}, false
	}
	return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
		s, ok := ts(c)
		if !ok {
			return false, false
		}
		sub, ok := as(c)
		if !ok {
			return false, false
		}
		return f(s, sub), true
	}}, true
}

func (fc *fastCompiler) conditional(args []celast.Expr) (node, bool) {
	cn, ok := fc.compile(args[0])
	if !ok {
		return node{}, false
	}
	cond, ok := asBool(cn)
	if !ok {
		return node{}, false
	}
	a, ok := fc.compile(args[1])
	if !ok {
		return node{}, false
	}
	b, ok := fc.compile(args[2])
	if !ok {
		return node{}, false
	}
	if a.t != b.t {
		// Mixed branch types: both as record values.
		if a, ok = fc.asDyn(a); !ok {
			return node{}, false
		}
		if b, ok = fc.asDyn(b); !ok {
			return node{}, false
		}
	}
	switch a.t {
	case tBool:
		return node{t: tBool, b: choose(cond, a.b, b.b)}, true
	case tInt:
		return node{t: tInt, i: choose(cond, a.i, b.i)}, true
	case tUint:
		return node{t: tUint, u: choose(cond, a.u, b.u)}, true
	case tDouble:
		return node{t: tDouble, d: choose(cond, a.d, b.d)}, true
	case tString:
		return node{t: tString, s: choose(cond, a.s, b.s)}, true
	}
	return node{t: tDyn, v: func(c *fastCtx) *record.Value {
		v, ok := cond(c)
		switch {
		case !ok:
			return nil
		case v:
			return a.v(c)
		}
		return b.v(c)
	}}, true
}

// choose is cond ? a : b; a condition that misses (not a bool) misses.
func choose[T any](cond func(*fastCtx) (bool, bool), a, b func(*fastCtx) (T, bool)) func(*fastCtx) (T, bool) {
	return func(c *fastCtx) (T, bool) {
		v, ok := cond(c)
		switch {
		case !ok:
			var zero T
			return zero, false
		case v:
			return a(c)
		}
		return b(c)
	}
}

// Conversions of a node to a wanted type: a static type must be the wanted
// one (CEL has no implicit conversions; its checker rejects the others), a
// dynamic one is checked per record. They are written out per type, not as
// one generic function taking the conversion: that version calls the
// conversion through a pointer on every record, and measured EvalBool 13
// -> 19 ns.

func asBool(n node) (func(*fastCtx) (bool, bool), bool) {
	switch {
	case n.t == tBool:
		return n.b, true
	case n.field != "":
		h := n.hint
		return func(c *fastCtx) (bool, bool) {
			if v := getField(c.in, &c.hints[h]); v != nil {
				return v.AsBool()
			}
			return false, false
		}, true
	case n.t == tDyn:
		return func(c *fastCtx) (bool, bool) {
			if v := n.v(c); v != nil {
				return v.AsBool()
			}
			return false, false
		}, true
	}
	return nil, false
}

func asInt(n node) (func(*fastCtx) (int64, bool), bool) {
	switch {
	case n.t == tInt:
		return n.i, true
	case n.field != "":
		h := n.hint
		return func(c *fastCtx) (int64, bool) {
			if v := getField(c.in, &c.hints[h]); v != nil {
				return v.AsInt()
			}
			return 0, false
		}, true
	case n.t == tDyn:
		return func(c *fastCtx) (int64, bool) {
			if v := n.v(c); v != nil {
				return v.AsInt()
			}
			return 0, false
		}, true
	}
	return nil, false
}

// asUint: records hold no uints, so only a static uint is one.
func asUint(n node) (func(*fastCtx) (uint64, bool), bool) {
	if n.t == tUint {
		return n.u, true
	}
	if n.t == tDyn {
		return func(*fastCtx) (uint64, bool) { return 0, false }, true
	}
	return nil, false
}

func asDouble(n node) (func(*fastCtx) (float64, bool), bool) {
	switch {
	case n.t == tDouble:
		return n.d, true
	case n.field != "":
		h := n.hint
		return func(c *fastCtx) (float64, bool) {
			v := getField(c.in, &c.hints[h])
			if v == nil || v.Kind() != record.KindFloat { // AsFloat would take an int too
				return 0, false
			}
			return v.AsFloat()
		}, true
	case n.t == tDyn:
		return func(c *fastCtx) (float64, bool) {
			v := n.v(c)
			if v == nil || v.Kind() != record.KindFloat { // AsFloat would take an int too
				return 0, false
			}
			return v.AsFloat()
		}, true
	}
	return nil, false
}

func asString(n node) (func(*fastCtx) (string, bool), bool) {
	switch {
	case n.t == tString:
		return n.s, true
	case n.field != "":
		h := n.hint
		return func(c *fastCtx) (string, bool) {
			if v := getField(c.in, &c.hints[h]); v != nil {
				return v.AsString()
			}
			return "", false
		}, true
	case n.t == tDyn:
		return func(c *fastCtx) (string, bool) {
			if v := n.v(c); v != nil {
				return v.AsString()
			}
			return "", false
		}, true
	}
	return nil, false
}

// asDyn returns n as a node of record values. A uint cannot be one (it
// would meet operators as a uint, not as the int a record holds).
func (fc *fastCompiler) asDyn(n node) (node, bool) {
	if n.t == tDyn {
		return n, true
	}
	out, ok := outputValue(n)
	if !ok || n.t == tUint {
		return node{}, false
	}
	s := fc.slot()
	return node{t: tDyn, v: func(c *fastCtx) *record.Value {
		if !out(c, &c.vals[s]) {
			return nil
		}
		return &c.vals[s]
	}}, true
}

// outputValue returns n as a function storing the record value a map
// literal's entry gets, what toValue makes of CEL's value, into dst, and
// reporting false if it misses. A uint result becomes an int, missing
// above MaxInt64 (where toValue fails).
func outputValue(n node) (func(c *fastCtx, dst *record.Value) bool, bool) {
	switch {
	case n.field != "": // the usual projection, one call less
		h := n.hint
		return func(c *fastCtx, dst *record.Value) bool {
			if v := getField(c.in, &c.hints[h]); v != nil {
				*dst = *v
				return true
			}
			return false
		}, true
	}
	switch n.t {
	case tDyn:
		return func(c *fastCtx, dst *record.Value) bool {
			if v := n.v(c); v != nil {
				*dst = *v
				return true
			}
			return false
		}, true
	case tBool:
		return func(c *fastCtx, dst *record.Value) bool {
			b, ok := n.b(c)
			*dst = record.Bool(b)
			return ok
		}, true
	case tInt:
		return func(c *fastCtx, dst *record.Value) bool {
			i, ok := n.i(c)
			*dst = record.Int(i)
			return ok
		}, true
	case tUint:
		return func(c *fastCtx, dst *record.Value) bool {
			u, ok := n.u(c)
			*dst = record.Int(int64(u))
			return ok && u <= math.MaxInt64
		}, true
	case tDouble:
		return func(c *fastCtx, dst *record.Value) bool {
			d, ok := n.d(c)
			*dst = record.Float(d)
			return ok
		}, true
	case tString:
		return func(c *fastCtx, dst *record.Value) bool {
			s, ok := n.s(c)
			*dst = record.String(s)
			return ok
		}, true
	}
	return nil, false
}

func logical(and bool, l, r node) (node, bool) {
	lb, ok1 := asBool(l)
	rb, ok2 := asBool(r)
	if !ok1 || !ok2 {
		return node{}, false
	}
	return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
		a, ok := lb(c)
		if !ok {
			return false, false
		}
		if a != and { // false && _, true || _
			return a, true
		}
		return rb(c)
	}}, true
}

func (fc *fastCompiler) negate(a node) (node, bool) {
	switch a.t {
	case tInt:
		f := a.i
		return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
			x, ok := f(c)
			if !ok || x == math.MinInt64 {
				return 0, false
			}
			return -x, true
		}}, true
	case tDouble:
		f := a.d
		return node{t: tDouble, d: func(c *fastCtx) (float64, bool) {
			x, ok := f(c)
			return -x, ok
		}}, true
	case tDyn:
		// -record.x: int or double, known per record.
		s := fc.slot()
		return node{t: tDyn, v: func(c *fastCtx) *record.Value {
			v := a.v(c)
			if v == nil {
				return nil
			}
			switch v.Kind() {
			case record.KindInt:
				x, _ := v.AsInt()
				if x == math.MinInt64 {
					return nil
				}
				c.vals[s] = record.Int(-x)
			case record.KindFloat:
				x, _ := v.AsFloat()
				c.vals[s] = record.Float(-x)
			default:
				return nil
			}
			return &c.vals[s]
		}}, true
	}
	return node{}, false
}

// toInt is int(): of an int, or of a double in range (CEL's
// doubleToInt64Checked); anything else misses.
func toInt(a node) (node, bool) {
	conv := func(v *record.Value) (int64, bool) {
		switch v.Kind() {
		case record.KindInt:
			return v.AsInt()
		case record.KindFloat:
			d, _ := v.AsFloat()
			return doubleToInt(d)
		}
		return 0, false
	}
	switch a.t {
	case tInt:
		return a, true
	case tDouble:
		f := a.d
		return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
			d, ok := f(c)
			if !ok {
				return 0, false
			}
			return doubleToInt(d)
		}}, true
	case tDyn:
		return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
			if v := a.v(c); v != nil {
				return conv(v)
			}
			return 0, false
		}}, true
	}
	return node{}, false
}

func doubleToInt(d float64) (int64, bool) {
	if math.IsInf(d, 0) || math.IsNaN(d) || d <= math.MinInt64 || d >= math.MaxInt64 {
		return 0, false
	}
	return int64(d), true
}

// toDouble is double() of a number; of a string (parsed) it misses.
func toDouble(a node) (node, bool) {
	switch a.t {
	case tDouble:
		return a, true
	case tInt:
		f := a.i
		return node{t: tDouble, d: func(c *fastCtx) (float64, bool) {
			i, ok := f(c)
			return float64(i), ok
		}}, true
	case tUint:
		f := a.u
		return node{t: tDouble, d: func(c *fastCtx) (float64, bool) {
			u, ok := f(c)
			return float64(u), ok
		}}, true
	case tDyn:
		return node{t: tDouble, d: func(c *fastCtx) (float64, bool) {
			v := a.v(c)
			if v == nil {
				return 0, false
			}
			switch v.Kind() {
			case record.KindInt, record.KindFloat:
				return v.AsFloat()
			}
			return 0, false
		}}, true
	}
	return node{}, false
}

// size is size() of a string (in code points, as CEL), list or map.
func size(a node) (node, bool) {
	switch a.t {
	case tString:
		f := a.s
		return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
			s, ok := f(c)
			return int64(utf8.RuneCountInString(s)), ok
		}}, true
	case tDyn:
		return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
			v := a.v(c)
			if v == nil {
				return 0, false
			}
			switch v.Kind() {
			case record.KindString:
				s, _ := v.AsString()
				return int64(utf8.RuneCountInString(s)), true
			case record.KindList:
				l, _ := v.AsList()
				return int64(len(l)), true
			case record.KindMap:
				m, _ := v.AsMap()
				return int64(m.Len()), true
			}
			return 0, false
		}}, true
	}
	return node{}, false
}

// arith compiles l op r. With a static operand the other must have
// its type at run time (CEL has no implicit conversions); with two field
// reads the kinds decide per record.
func (fc *fastCompiler) arith(fn string, l, r node) (node, bool) {
	op := arithOps[fn]
	t := l.t
	if t == tDyn {
		t = r.t
	} else if r.t != tDyn && r.t != t {
		return node{}, false
	}
	switch t {
	case tInt:
		li, _ := asInt(l)
		ri, _ := asInt(r)
		if r.konst {
			y := r.ki
			return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
				x, ok := li(c)
				if !ok {
					return 0, false
				}
				return intArith(op, x, y)
			}}, true
		}
		return node{t: tInt, i: func(c *fastCtx) (int64, bool) {
			x, ok := li(c)
			if !ok {
				return 0, false
			}
			y, ok := ri(c)
			if !ok {
				return 0, false
			}
			return intArith(op, x, y)
		}}, true
	case tUint:
		lu, _ := asUint(l)
		ru, _ := asUint(r)
		return node{t: tUint, u: func(c *fastCtx) (uint64, bool) {
			x, ok := lu(c)
			if !ok {
				return 0, false
			}
			y, ok := ru(c)
			if !ok {
				return 0, false
			}
			return uintArith(op, x, y)
		}}, true
	case tDouble:
		if op == opMod {
			return node{}, false
		}
		ld, _ := asDouble(l)
		rd, _ := asDouble(r)
		return node{t: tDouble, d: func(c *fastCtx) (float64, bool) {
			x, ok := ld(c)
			if !ok {
				return 0, false
			}
			y, ok := rd(c)
			if !ok {
				return 0, false
			}
			return doubleArith(op, x, y), true
		}}, true
	case tString:
		if op != opAdd {
			return node{}, false
		}
		ls, _ := asString(l)
		rs, _ := asString(r)
		return node{t: tString, s: func(c *fastCtx) (string, bool) {
			x, ok := ls(c)
			if !ok {
				return "", false
			}
			y, ok := rs(c)
			if !ok {
				return "", false
			}
			return x + y, true
		}}, true
	case tDyn:
		s := fc.slot()
		return node{t: tDyn, v: func(c *fastCtx) *record.Value {
			x := l.v(c)
			if x == nil {
				return nil
			}
			y := r.v(c)
			if y == nil {
				return nil
			}
			v, ok := dynArith(op, x, y)
			if !ok {
				return nil
			}
			c.vals[s] = v
			return &c.vals[s]
		}}, true
	}
	return node{}, false
}

// arithOp is an arithmetic operator, switched on per record faster than
// its name.
type arithOp uint8

const (
	opAdd arithOp = iota
	opSub
	opMul
	opDiv
	opMod
)

var arithOps = map[string]arithOp{
	operators.Add: opAdd, operators.Subtract: opSub, operators.Multiply: opMul,
	operators.Divide: opDiv, operators.Modulo: opMod,
}

// intArith is CEL's checked int arithmetic (cel-go common/types/overflow.go),
// reporting false where CEL fails.
func intArith(op arithOp, x, y int64) (int64, bool) {
	switch op {
	case opAdd:
		if (y > 0 && x > math.MaxInt64-y) || (y < 0 && x < math.MinInt64-y) {
			return 0, false
		}
		return x + y, true
	case opSub:
		if (y < 0 && x > math.MaxInt64+y) || (y > 0 && x < math.MinInt64+y) {
			return 0, false
		}
		return x - y, true
	case opMul:
		if (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) ||
			(x > 0 && y > 0 && x > math.MaxInt64/y) ||
			(x > 0 && y < 0 && y < math.MinInt64/x) ||
			(x < 0 && y > 0 && x < math.MinInt64/y) ||
			(x < 0 && y < 0 && y < math.MaxInt64/x) {
			return 0, false
		}
		return x * y, true
	case opDiv:
		if y == 0 || (x == math.MinInt64 && y == -1) {
			return 0, false
		}
		return x / y, true
	case opMod:
		if y == 0 || (x == math.MinInt64 && y == -1) {
			return 0, false
		}
		return x % y, true
	}
	return 0, false
}

func doubleArith(op arithOp, x, y float64) float64 {
	switch op {
	case opAdd:
		return x + y
	case opSub:
		return x - y
	case opMul:
		return x * y
	}
	return x / y // IEEE, as CEL: no error on zero
}

// uintArith is CEL's checked uint arithmetic, reporting false where CEL
// fails.
func uintArith(op arithOp, x, y uint64) (uint64, bool) {
	switch op {
	case opAdd:
		if x > math.MaxUint64-y {
			return 0, false
		}
		return x + y, true
	case opSub:
		if y > x {
			return 0, false
		}
		return x - y, true
	case opMul:
		if y != 0 && x > math.MaxUint64/y {
			return 0, false
		}
		return x * y, true
	case opDiv:
		if y == 0 {
			return 0, false
		}
		return x / y, true
	case opMod:
		if y == 0 {
			return 0, false
		}
		return x % y, true
	}
	return 0, false
}

// dynArith is arithmetic between two record values of the same kind.
func dynArith(op arithOp, x, y *record.Value) (record.Value, bool) {
	switch {
	case x.Kind() == record.KindInt && y.Kind() == record.KindInt:
		a, _ := x.AsInt()
		b, _ := y.AsInt()
		r, ok := intArith(op, a, b)
		return record.Int(r), ok
	case x.Kind() == record.KindFloat && y.Kind() == record.KindFloat && op != opMod:
		a, _ := x.AsFloat()
		b, _ := y.AsFloat()
		return record.Float(doubleArith(op, a, b)), true
	case x.Kind() == record.KindString && y.Kind() == record.KindString && op == opAdd:
		a, _ := x.AsString()
		b, _ := y.AsString()
		return record.String(a + b), true
	}
	return record.Value{}, false
}

// scalar is a value compared by the generic comparisons: any type.
type scalar struct {
	t   typ // tDyn for null
	b   bool
	i   int64
	u   uint64
	d   float64
	s   string
	ok  bool // false: a list or a map (or a miss)
	nul bool
}

func asScalar(n node) func(*fastCtx) (scalar, bool) {
	switch n.t {
	case tBool:
		return func(c *fastCtx) (scalar, bool) { b, ok := n.b(c); return scalar{t: tBool, b: b, ok: true}, ok }
	case tInt:
		return func(c *fastCtx) (scalar, bool) { i, ok := n.i(c); return scalar{t: tInt, i: i, ok: true}, ok }
	case tUint:
		return func(c *fastCtx) (scalar, bool) { u, ok := n.u(c); return scalar{t: tUint, u: u, ok: true}, ok }
	case tDouble:
		return func(c *fastCtx) (scalar, bool) { d, ok := n.d(c); return scalar{t: tDouble, d: d, ok: true}, ok }
	case tString:
		return func(c *fastCtx) (scalar, bool) { s, ok := n.s(c); return scalar{t: tString, s: s, ok: true}, ok }
	}
	return func(c *fastCtx) (scalar, bool) {
		v := n.v(c)
		if v == nil {
			return scalar{}, false
		}
		switch v.Kind() {
		case record.KindNull:
			return scalar{t: tDyn, nul: true, ok: true}, true
		case record.KindBool:
			b, _ := v.AsBool()
			return scalar{t: tBool, b: b, ok: true}, true
		case record.KindInt:
			i, _ := v.AsInt()
			return scalar{t: tInt, i: i, ok: true}, true
		case record.KindFloat:
			d, _ := v.AsFloat()
			return scalar{t: tDouble, d: d, ok: true}, true
		case record.KindString:
			s, _ := v.AsString()
			return scalar{t: tString, s: s, ok: true}, true
		}
		return scalar{}, true // list or map: ok false, compared by CEL
	}
}

// constScalar is the scalar of an int or double constant node.
func constScalar(n node) scalar {
	if n.konst {
		return scalar{t: tInt, i: n.ki, ok: true}
	}
	return scalar{t: tDouble, d: n.kd, ok: true}
}

// numberScalar is the scalar of an int or float record value.
func numberScalar(v *record.Value) scalar {
	if i, ok := v.AsInt(); ok {
		return scalar{t: tInt, i: i, ok: true}
	}
	d, _ := v.AsFloat()
	return scalar{t: tDouble, d: d, ok: true}
}

// isNumber reports whether t is int, uint or double.
func isNumber(t typ) bool { return t == tInt || t == tUint || t == tDouble }

// compareNumbers compares two numbers as cel-go does
// (common/types/compare.go), reporting false if either is NaN: unordered,
// an error for < and friends and false for ==.
func compareNumbers(a, b scalar) (int, bool) {
	if (a.t == tDouble && math.IsNaN(a.d)) || (b.t == tDouble && math.IsNaN(b.d)) {
		return 0, false
	}
	switch {
	case a.t == tInt && b.t == tInt:
		return cmp3(a.i < b.i, a.i > b.i), true
	case a.t == tUint && b.t == tUint:
		return cmp3(a.u < b.u, a.u > b.u), true
	case a.t == tDouble && b.t == tDouble:
		return cmp3(a.d < b.d, a.d > b.d), true
	case a.t == tDouble && b.t == tInt:
		return compareDoubleInt(a.d, b.i), true
	case a.t == tInt && b.t == tDouble:
		return -compareDoubleInt(b.d, a.i), true
	case a.t == tDouble && b.t == tUint:
		return compareDoubleUint(a.d, b.u), true
	case a.t == tUint && b.t == tDouble:
		return -compareDoubleUint(b.d, a.u), true
	case a.t == tInt && b.t == tUint:
		return compareIntUint(a.i, b.u), true
	case a.t == tUint && b.t == tInt:
		return -compareIntUint(b.i, a.u), true
	}
	return 0, false
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func compareDoubleInt(d float64, i int64) int {
	if d < math.MinInt64 {
		return -1
	}
	if d > math.MaxInt64 {
		return 1
	}
	f := float64(i)
	return cmp3(d < f, d > f)
}

func compareDoubleUint(d float64, u uint64) int {
	if d < 0 {
		return -1
	}
	if d > math.MaxUint64 {
		return 1
	}
	f := float64(u)
	return cmp3(d < f, d > f)
}

func compareIntUint(i int64, u uint64) int {
	if i < 0 || u > math.MaxInt64 {
		return -1
	}
	return cmp3(i < int64(u), i > int64(u))
}

// equalScalars is CEL's == (types.Equal) on two scalars: numbers compare
// by value across types (NaN equals nothing), null equals null, other
// values of different types are unequal. Lists and maps miss.
func equalScalars(a, b scalar) (bool, bool) {
	if !a.ok || !b.ok {
		return false, false
	}
	if a.nul || b.nul {
		return a.nul == b.nul, true
	}
	if isNumber(a.t) && isNumber(b.t) {
		c, ordered := compareNumbers(a, b)
		return ordered && c == 0, true
	}
	if a.t != b.t {
		return false, true
	}
	switch a.t {
	case tBool:
		return a.b == b.b, true
	case tString:
		return a.s == b.s, true
	}
	return false, false
}

func equality(ne bool, l, r node) (node, bool) {
	// The common shapes, without going through scalars.
	switch {
	case l.t == tInt && r.konst:
		y := r.ki
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			x, ok := l.i(c)
			return (x == y) != ne, ok
		}}, true
	case l.t == tInt && r.t == tInt:
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			x, ok := l.i(c)
			if !ok {
				return false, false
			}
			y, ok := r.i(c)
			return (x == y) != ne, ok
		}}, true
	case l.t == tString && r.t == tString:
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			x, ok := l.s(c)
			if !ok {
				return false, false
			}
			y, ok := r.s(c)
			return (x == y) != ne, ok
		}}, true
	case l.t == tDyn && (r.konst || r.dkonst):
		// record.x == 5: CEL's == of a number with anything else than a
		// number is false; lists and maps are left to CEL.
		k := constScalar(r)
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			v := l.v(c)
			if v == nil {
				return false, false
			}
			switch v.Kind() {
			case record.KindInt, record.KindFloat:
				o, ordered := compareNumbers(numberScalar(v), k)
				return (ordered && o == 0) != ne, true
			case record.KindNull, record.KindBool, record.KindString:
				return ne, true
			}
			return false, false
		}}, true
	}
	ls, rs := asScalar(l), asScalar(r)
	return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
		x, ok := ls(c)
		if !ok {
			return false, false
		}
		y, ok := rs(c)
		if !ok {
			return false, false
		}
		eq, ok := equalScalars(x, y)
		return eq != ne, ok
	}}, true
}

func ordering(op string, l, r node) (node, bool) {
	// The result for a comparison of -1, 0 and 1.
	var results [3]bool
	switch op {
	case operators.Less:
		results = [3]bool{true, false, false}
	case operators.LessEquals:
		results = [3]bool{true, true, false}
	case operators.Greater:
		results = [3]bool{false, false, true}
	default:
		results = [3]bool{false, true, true}
	}
	test := func(c int) bool { return results[c+1] }
	switch {
	case l.t == tDyn && (r.konst || r.dkonst):
		// record.x > 5: numbers only (anything else is CEL's error).
		k := constScalar(r)
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			v := l.v(c)
			if v == nil || (v.Kind() != record.KindInt && v.Kind() != record.KindFloat) {
				return false, false
			}
			o, ordered := compareNumbers(numberScalar(v), k)
			return test(o), ordered
		}}, true
	case l.t == tInt && r.t == tInt:
		return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
			x, ok := l.i(c)
			if !ok {
				return false, false
			}
			y, ok := r.i(c)
			return test(cmp3(x < y, x > y)), ok
		}}, true
	}
	ls, rs := asScalar(l), asScalar(r)
	return node{t: tBool, b: func(c *fastCtx) (bool, bool) {
		x, ok := ls(c)
		if !ok {
			return false, false
		}
		y, ok := rs(c)
		if !ok || !x.ok || !y.ok || x.nul || y.nul {
			return false, false
		}
		if isNumber(x.t) && isNumber(y.t) {
			o, ordered := compareNumbers(x, y)
			return test(o), ordered
		}
		if x.t != y.t {
			return false, false
		}
		switch x.t {
		case tString:
			return test(strings.Compare(x.s, y.s)), true
		case tBool:
			return test(cmp3(!x.b && y.b, x.b && !y.b)), true
		}
		return false, false
	}}, true
}
