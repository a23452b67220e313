package expr

import (
	"fmt"
	"slices"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/weirstream/weir/pkg/record"
)

// literalPlan is the fast path of an expression whose root is a map literal
// with distinct constant string keys (a map operator's usual
// `{"word": record.line, "n": 1}`), or a list literal of such maps. CEL
// would build a Go map per record for each literal, boxing every value, only
// for mapInto to take it apart again. The plan instead evaluates each value
// on its own and writes it straight into the output record:
//
//   - a constant (any value not reading `record` that evaluates and converts
//     at compile time, such as 1, "x" or [1, 2]) is a precomputed
//     record.Value;
//   - a value in the fast path's subset (fast.go: field selections such as
//     `record.f`, `record["f"]` or `record.a.b`, arithmetic, comparisons,
//     conditionals, ...) is computed by its compiled closures, copying the
//     input's values and converting nothing;
//   - anything else, and a fast value that misses on this record, runs as
//     its own cel.Program over the same `record`.
//
// It must behave exactly like CEL's evaluation of the whole expression
// followed by mapInto, which TestLiteralPlanMatchesCEL checks:
//
//   - All values are evaluated first, in source order, and the first
//     evaluation failure is the result (CEL evaluates a map literal's entries
//     in order and stops at the first error); only then are values converted
//     to record values, so a conversion error never hides an evaluation
//     error of a later entry.
//   - A fast value that misses (a missing key, a step through a non-map,
//     an overflow, a division by zero, an operand of another type) is
//     evaluated by CEL, so the result or error is CEL's own.
//   - Fields are written in the order orderFor would choose: the first map
//     literal of the expression with the same key set, computed at compile
//     time (for a map root that is the root itself).
//
// Converting a fast value costs no budget: its static cost already covers
// it (a map literal costs 30 units and 2 per entry, its conversion 2 per
// entry), so CEL's conversion could not fail on the budget either.
//
// A literalPlan is immutable and shared by clones.
type literalPlan struct {
	maps    []literalMap // the root map, or the elements of the root list
	entries int          // entries over all maps: the size of the scratch
}

type literalMap struct {
	entries []literalEntry // in source order, which is evaluation order
	order   []int          // output field order: indexes into entries
	// direct: every entry is entryConst or entryFast, so that the map can
	// be written straight into the output record (see fastMapInto).
	direct bool
	pos    []int // output position of each entry: the inverse of order
}

type entryKind uint8

const (
	entryConst entryKind = iota // value, precomputed
	entryFast                   // fast, compiled closures
	entryCEL                    // prg
)

type literalEntry struct {
	name  string
	kind  entryKind
	value record.Value                       // entryConst
	fast  func(*fastCtx, *record.Value) bool // entryFast
	// prg evaluates the entry's value expression: always for entryCEL, and
	// for entryFast when it misses, to give CEL's result or error.
	prg cel.Program
}

// planLiteral returns the fast path for the checked expression a, or nil if
// its root is not a literal the fast path handles or it is too costly to
// run untracked. p must have its keyOrders and maxCost set: constants are
// converted with them. fc compiles the fast values.
func planLiteral(e *cel.Env, a *celast.AST, p *Program, fc *fastCompiler) *literalPlan {
	if p.maxCost > maxUntracked {
		// Never used (see SetLimits), and planning evaluates the entries
		// that do not read the record: one could run for hours.
		return nil
	}
	root := a.Expr()
	var lits []celast.Expr
	switch {
	case p.want == ResultMap && root.Kind() == celast.MapKind:
		lits = []celast.Expr{root}
	case p.want == ResultListOfMaps && root.Kind() == celast.ListKind:
		l := root.AsList()
		if len(l.OptionalIndices()) > 0 {
			return nil
		}
		lits = l.Elements()
	default:
		return nil
	}
	plan := &literalPlan{maps: make([]literalMap, 0, len(lits))}
	for _, lit := range lits {
		m, ok := planMap(e, a, lit, p, fc)
		if !ok {
			return nil
		}
		plan.maps = append(plan.maps, m)
		plan.entries += len(m.entries)
	}
	return plan
}

// planMap plans one map literal: keys must be distinct constant strings and
// entries not optional (`?"k": v`, which the environment does not enable
// today anyway).
func planMap(e *cel.Env, a *celast.AST, lit celast.Expr, p *Program, fc *fastCompiler) (literalMap, bool) {
	if lit.Kind() != celast.MapKind {
		return literalMap{}, false
	}
	var m literalMap
	seen := make(map[string]bool)
	for _, en := range lit.AsMap().Entries() {
		me := en.AsMapEntry()
		k := me.Key()
		if me.IsOptional() || k.Kind() != celast.LiteralKind {
			return literalMap{}, false
		}
		name, ok := k.AsLiteral().(types.String)
		if !ok || seen[string(name)] {
			// A repeated key is legal CEL (the last value wins, at the
			// first key's place): rare enough to leave to CEL.
			return literalMap{}, false
		}
		seen[string(name)] = true
		ent, ok := planEntry(e, a, string(name), me.Value(), p, fc)
		if !ok {
			return literalMap{}, false
		}
		m.entries = append(m.entries, ent)
	}
	m.order = make([]int, len(m.entries))
	for i := range m.order {
		m.order[i] = i
	}
	// The order mapInto would give the CEL map: that of the first literal
	// with the same key set. keyOrders holds distinct keys, so equal length
	// and inclusion mean the same set.
	for _, keys := range p.keyOrders {
		if len(keys) != len(m.entries) {
			continue
		}
		order := make([]int, 0, len(keys))
		for _, k := range keys {
			name := string(k.(types.String))
			for i, en := range m.entries {
				if en.name == name {
					order = append(order, i)
					break
				}
			}
		}
		if len(order) == len(keys) {
			m.order = order
			break
		}
	}
	m.pos = make([]int, len(m.order))
	for i, j := range m.order {
		m.pos[j] = i
	}
	m.direct = true
	for _, en := range m.entries {
		if en.kind == entryCEL {
			m.direct = false
		}
	}
	return m, true
}

func planEntry(e *cel.Env, a *celast.AST, name string, v celast.Expr, p *Program, fc *fastCompiler) (literalEntry, bool) {
	ent := literalEntry{name: name}
	prg, err := subProgram(e, a, v)
	if err != nil {
		return literalEntry{}, false
	}
	ent.prg = prg
	ent.kind = entryCEL
	if readsRecord(v) {
		if n, ok := fc.compile(v); ok {
			if f, ok := outputValue(n); ok {
				ent.kind, ent.fast = entryFast, f
			}
		}
		return ent, true
	}
	// No input: the value is the same for every record, unless it fails,
	// in which case it is left to fail per record as CEL would.
	var act activation
	out, _, err := prg.Eval(&act)
	if err != nil || out == nil || types.IsUnknownOrError(out) {
		return ent, true
	}
	// A constant is converted once, here: its size is the expression's.
	p.budget = unbounded
	rv, err := p.toValue(out)
	p.budget = 0
	if err != nil {
		return ent, true
	}
	ent.kind, ent.value, ent.prg = entryConst, rv, nil
	return ent, true
}

// subProgram plans the sub-expression sub of the checked AST a as a program
// of its own. The type and reference maps are keyed by expression id, so
// the whole expression's maps serve the sub-expression too.
func subProgram(e *cel.Env, a *celast.AST, sub celast.Expr) (cel.Program, error) {
	pb, err := celast.ToProto(celast.NewCheckedAST(celast.NewAST(sub, a.SourceInfo()), a.TypeMap(), a.ReferenceMap()))
	if err != nil {
		return nil, err
	}
	sa, err := cel.CheckedExprToAstWithSource(pb, nil)
	if err != nil {
		return nil, err
	}
	return e.Program(sa, cel.EvalOptions(cel.OptOptimize))
}

// fieldPath returns the keys of a chain of selections (`.f`, not has()) and
// constant string indexes (`["f"]`) from the variable `record`.
func fieldPath(x celast.Expr) ([]string, bool) {
	var rev []string
	for {
		switch x.Kind() {
		case celast.IdentKind:
			if x.AsIdent() != varName || len(rev) == 0 {
				return nil, false
			}
			path := make([]string, len(rev))
			for i, k := range rev {
				path[len(rev)-1-i] = k
			}
			return path, true
		case celast.SelectKind:
			s := x.AsSelect()
			if s.IsTestOnly() {
				return nil, false
			}
			rev = append(rev, s.FieldName())
			x = s.Operand()
		case celast.CallKind:
			c := x.AsCall()
			if c.FunctionName() != operators.Index || c.IsMemberFunction() || len(c.Args()) != 2 {
				return nil, false
			}
			k := c.Args()[1]
			if k.Kind() != celast.LiteralKind {
				return nil, false
			}
			s, ok := k.AsLiteral().(types.String)
			if !ok {
				return nil, false
			}
			rev = append(rev, string(s))
			x = c.Args()[0]
		default:
			return nil, false
		}
	}
}

// readsRecord reports whether x mentions an identifier named `record` (a
// comprehension variable of that name counts too: this only needs to be
// conservative).
func readsRecord(x celast.Expr) bool {
	found := false
	celast.PreOrderVisit(x, celast.NewExprVisitor(func(y celast.Expr) {
		if y.Kind() == celast.IdentKind && y.AsIdent() == varName {
			found = true
		}
	}))
	return found
}

// evalLiteral evaluates every entry of the plan on in, in source order,
// into p.direct (constants and resolved fields) or p.vals (CEL results). On
// success p.act.in is left set for the conversions that follow (toValue
// must recognise the input record); the caller clears it and the scratch
// with endLiteral.
func (p *Program) evalLiteral(in *record.Record) error {
	p.budget = p.limit
	p.act.in = (*recordMap)(in)
	p.fast.in = in
	i := 0
	for mi := range p.lit.maps {
		for ei := range p.lit.maps[mi].entries {
			en := &p.lit.maps[mi].entries[ei]
			switch en.kind {
			case entryConst:
				p.direct[i] = en.value
			case entryFast:
				if en.fast(&p.fast, &p.direct[i]) {
					break
				}
				p.fastMisses++
				if err := p.evalEntry(en, in, i); err != nil {
					return err
				}
			case entryCEL:
				if err := p.evalEntry(en, in, i); err != nil {
					return err
				}
			}
			i++
		}
	}
	return nil
}

func (p *Program) evalEntry(en *literalEntry, in *record.Record, i int) error {
	v, err := p.evalProgram(en.prg, in)
	if err != nil {
		p.endLiteral()
		return err
	}
	p.vals[i] = v
	return nil
}

// literalInto writes map m of the plan, whose entries start at base in the
// scratch, to out, which is empty.
func (p *Program) literalInto(m *literalMap, base int, out *record.Record) error {
	for _, j := range m.order {
		name := m.entries[j].name
		v := p.direct[base+j]
		if cv := p.vals[base+j]; cv != nil {
			var err error
			if v, err = p.toValue(cv); err != nil {
				return fmt.Errorf("field %q: %w", name, err)
			}
		}
		out.Fields = append(out.Fields, record.Field{Name: name, Value: v})
	}
	return nil
}

// endLiteral drops the references evaluation left in the scratch and the
// activation: the input record must not be retained.
func (p *Program) endLiteral() {
	p.release()
	clear(p.direct)
	clear(p.vals)
}

// evalMapLiteral is EvalMap's fast path.
func (p *Program) evalMapLiteral(in, out *record.Record) error {
	if p.lit.maps[0].direct {
		if p.fastMapInto(&p.lit.maps[0], in, out) {
			return nil
		}
		p.fastMisses++
	}
	if err := p.evalLiteral(in); err != nil {
		return err
	}
	defer p.endLiteral()
	if err := p.literalInto(&p.lit.maps[0], 0, out); err != nil {
		out.Reset()
		return p.failed(in, err)
	}
	return nil
}

// fastMapInto writes map m, all of whose entries are constants or fast
// values, straight into out, which is empty: no scratch, no conversion.
// Evaluation order does not matter, as nothing fails. If a value misses,
// it leaves out empty and reports false: the caller starts over with
// evalLiteral, which gives CEL's result for that value.
func (p *Program) fastMapInto(m *literalMap, in, out *record.Record) bool {
	n := len(m.entries)
	fs := slices.Grow(out.Fields[:0], n)[:n]
	p.fast.in = in
	ok := true
	for i := range m.entries {
		en := &m.entries[i]
		f := &fs[m.pos[i]]
		f.Name = en.name
		if en.kind == entryConst {
			f.Value = en.value
		} else if !en.fast(&p.fast, &f.Value) {
			ok = false
			break
		}
	}
	p.fast.in = nil
	clear(p.fast.vals)
	if !ok {
		clear(fs)
		out.Fields = fs[:0]
		return false
	}
	out.Fields = fs
	return true
}

// evalListLiteral is EvalList's fast path.
func (p *Program) evalListLiteral(in *record.Record, emit func(*record.Record) error) error {
	if err := p.evalLiteral(in); err != nil {
		return err
	}
	defer p.endLiteral()
	defer p.scratch.Reset()
	base := 0
	for i := range p.lit.maps {
		m := &p.lit.maps[i]
		p.scratch.Reset()
		if err := p.literalInto(m, base, &p.scratch); err != nil {
			return p.failed(in, fmt.Errorf("list element %d: %w", i, err))
		}
		if err := emit(&p.scratch); err != nil {
			return err
		}
		base += len(m.entries)
	}
	return nil
}

// newScratch returns the per-evaluation scratch a plan needs.
func (l *literalPlan) newScratch() ([]record.Value, []ref.Val) {
	if l == nil {
		return nil, nil
	}
	return make([]record.Value, l.entries), make([]ref.Val, l.entries)
}
