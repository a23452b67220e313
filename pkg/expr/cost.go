package expr

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/functions"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/weirstream/weir/pkg/config"
)

// DefaultCostLimit is the default of weir.expression.cost-limit: the most
// cost units one evaluation may use.
const DefaultCostLimit = 1_000_000

// Limits bound the evaluations of a Program.
type Limits struct {
	// CostLimit is the most cost units one evaluation (one record) may use,
	// conversion of its result included; 0 means DefaultCostLimit.
	CostLimit uint64
	// Done interrupts a running evaluation when it is closed: the task
	// that evaluates was canceled. nil never interrupts.
	Done <-chan struct{}
}

// CostLimitError is an evaluation stopped because it used more than the
// cost limit. It quotes no record: the expression and the limit say what
// to change.
type CostLimitError struct {
	Source string // the expression
	Limit  uint64
}

func (e *CostLimitError) Error() string {
	return fmt.Sprintf("expression %q exceeded the cost limit of %d (%s)", e.Source, e.Limit, config.ExpressionCostLimit.Key)
}

// ErrInterrupted is the error of an evaluation stopped because Limits.Done
// was closed.
var ErrInterrupted = errors.New("expression evaluation interrupted: the task was canceled")

// errCostPanic and errInterruptPanic are how a guard or a comprehension
// step stops an evaluation from deep inside CEL: cel.Program.Eval recovers an
// interpreter.EvalCancelledError and returns it, as it does for its own
// cost limit.
var (
	errCostPanic      = interpreter.EvalCancelledError{Cause: interpreter.CostLimitExceeded, Message: "operation cancelled: actual cost limit exceeded"}
	errInterruptPanic = interpreter.EvalCancelledError{Cause: interpreter.ContextCancelled, Message: "operation interrupted"}
)

// maxUntracked is the most an expression may cost, whatever the input, to
// run without cost tracking: it cannot be interrupted either, so it must
// be short (a few milliseconds) even when the limit is far higher.
const maxUntracked = 100_000

// unbounded is the static cost of an expression whose cost depends on the
// size of the input (a string searched, a list iterated).
const unbounded = math.MaxUint64

// staticCost returns the most an evaluation of the checked ast can cost
// whatever the input, by cel-go's estimator (which bounds its runtime
// tracker's count): sizes of values read from the record are unknown, so
// an expression whose cost grows with them gets unbounded.
func staticCost(e *cel.Env, ast *cel.Ast) uint64 {
	est, err := e.EstimateCost(ast, unknownSizes{})
	if err != nil {
		return unbounded
	}
	return est.Max
}

// unknownSizes is a checker.CostEstimator that knows nothing: every
// variable's size is unknown, and every call costs what cel-go says.
type unknownSizes struct{}

func (unknownSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }
func (unknownSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// The meter. A tracked Program counts the cost of its evaluation itself,
// in Program.cost, rather than with cel-go's runtime cost tracker: that
// tracker pushes a value per step of a comprehension on a stack it
// searches at every step, so a comprehension over n elements takes time
// in n² (40,000 steps take seconds) and memory in n, and it counts the
// steps of filter and exists_one as nothing. It also counts a call
// dispatched at run time (any operator on a record's field, typed dyn) as
// one unit whatever its arguments, and checks the limit only after a call
// has allocated its result.
//
// The meter wraps every function binding of the environment, the == and
// != operators (which have none) and the range of every comprehension.
// One unit is:
//
//   - a function call or an == or !=, plus one unit per 10 bytes of each
//     string or bytes argument and result (matches: the product of its
//     string's and its pattern's), one per element of a list or map it
//     returns (list +: of its right operand, as the accumulator of map and
//     filter grows in place), one per element of the list `in` searches
//     and of the smaller list or map == compares;
//   - a step of a comprehension;
//   - half of a value converted into the output record (toValue).
//
//   - a list literal built: 10 units and one per element; a map literal:
//     30 and one per key and per value (cel-go's base costs).
//
// Field reads, && || ?: and constants cost nothing: their number per
// evaluation is bounded by the expression's length, times the steps of
// the comprehensions around them. The count is checked before
// each call that can build a large result (replace, split, join, format:
// guards), so that no call allocates past the limit, and after every call.

// planTracked plans the checked ast with the meter. The program is p's
// own: its bindings count into p.
func (p *Program) planTracked(e *cel.Env, ast *cel.Ast) (cel.Program, error) {
	bindings, err := p.meteredBindings(e)
	if err != nil {
		return nil, err
	}
	counted, err := countSteps(ast)
	if err != nil {
		return nil, err
	}
	bindings = append(bindings, &functions.Overload{Operator: stepsFunction, Unary: p.countedRange})
	// Without cel.OptOptimize: it would fold constant literals past the
	// meter (harmless) and run matches with a constant pattern without its
	// binding (not harmless).
	return e.Program(counted,
		cel.Functions(bindings...),
		cel.CustomDecoratorV2(p.meterNode),
	)
}

// charge adds c units to the evaluation's cost, stopping it past the limit.
func (p *Program) charge(c uint64) {
	p.cost = addSat(p.cost, c)
	if p.cost > p.limit {
		panic(errCostPanic)
	}
}

// meteredBindings returns every function binding of e, wrapped to count.
func (p *Program) meteredBindings(e *cel.Env) ([]*functions.Overload, error) {
	var out []*functions.Overload
	seen := make(map[string]bool)
	for name, fn := range e.Functions() {
		bs, err := fn.Bindings()
		if err != nil {
			return nil, fmt.Errorf("bindings of %q: %w", name, err)
		}
		for _, b := range bs {
			if seen[b.Operator] {
				continue
			}
			seen[b.Operator] = true
			out = append(out, p.metered(name, b))
		}
	}
	return out, nil
}

func (p *Program) metered(fn string, b *functions.Overload) *functions.Overload {
	o := *b
	g := guards[fn]
	if u := b.Unary; u != nil {
		o.Unary = func(v ref.Val) ref.Val {
			args := [1]ref.Val{v}
			p.guard(g, args[:])
			r := u(v)
			p.charge(callCost(fn, args[:], r))
			return r
		}
	}
	if bin := b.Binary; bin != nil {
		o.Binary = func(l, r ref.Val) ref.Val {
			args := [2]ref.Val{l, r}
			p.guard(g, args[:])
			res := bin(l, r)
			p.charge(callCost(fn, args[:], res))
			return res
		}
	}
	if f := b.Function; f != nil {
		o.Function = func(args ...ref.Val) ref.Val {
			p.guard(g, args)
			r := f(args...)
			p.charge(callCost(fn, args, r))
			return r
		}
	}
	return &o
}

// guard stops the evaluation before a call whose result alone would take
// it past the limit.
func (p *Program) guard(g guard, args []ref.Val) {
	if g == nil {
		return
	}
	if c, ok := g(args, p.limit); ok && addSat(p.cost, c) > p.limit {
		panic(errCostPanic)
	}
}

// callCost is the cost of a call of function fn (see the meter).
func callCost(fn string, args []ref.Val, result ref.Val) uint64 {
	c := uint64(1)
	if fn == overloads.Matches && len(args) == 2 {
		c = addSat(c, mulSat(1+bytesCost(args[0]), 1+uint64(len(stringOf(args[1])))/4))
	} else {
		for i, a := range args {
			c = addSat(c, bytesCost(a))
			if fn == operators.In && i == 1 {
				if l, ok := a.(traits.Lister); ok {
					c = addSat(c, elems(l))
				}
			}
		}
	}
	switch r := result.(type) {
	case types.String, types.Bytes:
		c = addSat(c, bytesCost(r))
	case traits.Lister:
		if fn == operators.Add && len(args) == 2 {
			c = addSat(c, elems(args[1]))
		} else {
			c = addSat(c, elems(r))
		}
	case traits.Mapper:
		c = addSat(c, elems(r))
	}
	return c
}

// bytesCost is one unit per 10 bytes (rounded up) of a string or bytes
// value, 0 for anything else.
func bytesCost(v ref.Val) uint64 {
	var n int
	switch x := v.(type) {
	case types.String:
		n = len(x)
	case types.Bytes:
		n = len(x)
	default:
		return 0
	}
	return (uint64(n) + 9) / 10
}

func stringOf(v ref.Val) string {
	s, _ := v.(types.String)
	return string(s)
}

// elems is the size of a list or map, 0 for anything else.
func elems(v ref.Val) uint64 {
	s, ok := v.(traits.Sizer)
	if !ok {
		return 0
	}
	n, _ := s.Size().(types.Int)
	return uint64(max(n, 0))
}

// meterNode meters what the planner builds without a binding: == and !=,
// and list and map literals.
func (p *Program) meterNode(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	switch c := i.(type) {
	case interpreter.InterpretableCall:
		if len(c.Args()) != 2 {
			break
		}
		switch c.Function() {
		case operators.Equals:
			return &meteredEquality{id: c.ID(), lhs: c.Args()[0], rhs: c.Args()[1], p: p}, nil
		case operators.NotEquals:
			return &meteredEquality{id: c.ID(), lhs: c.Args()[0], rhs: c.Args()[1], p: p, not: true}, nil
		}
	case interpreter.InterpretableConstructor:
		// cel-go's base costs, and the elements: a map of one entry is
		// some 600 bytes, one of a list 16.
		n := uint64(len(c.InitVals()))
		cost := common.StructCreateBaseCost + n
		switch c.Type() {
		case types.ListType:
			cost = common.ListCreateBaseCost + n
		case types.MapType:
			cost = common.MapCreateBaseCost + n
		}
		return &meteredConstructor{InterpretableConstructor: c, p: p, cost: cost}, nil
	}
	return i, nil
}

// meteredConstructor is a literal that charges its cost when built.
type meteredConstructor struct {
	interpreter.InterpretableConstructor
	p    *Program
	cost uint64
}

func (c *meteredConstructor) Exec(f *interpreter.ExecutionFrame) ref.Val {
	c.p.charge(c.cost)
	return c.InterpretableConstructor.Exec(f)
}

func (c *meteredConstructor) Eval(a interpreter.Activation) ref.Val {
	return c.Exec(interpreter.AsFrame(a))
}

// meteredEquality is cel-go's evalEq (or evalNe, with not) that charges
// what comparing costs before it compares.
type meteredEquality struct {
	id       int64
	lhs, rhs interpreter.InterpretableV2
	p        *Program
	not      bool
}

func (e *meteredEquality) ID() int64 { return e.id }

func (e *meteredEquality) Eval(a interpreter.Activation) ref.Val {
	return e.Exec(interpreter.AsFrame(a))
}

func (e *meteredEquality) Exec(f *interpreter.ExecutionFrame) ref.Val {
	l := e.lhs.Exec(f)
	if types.IsError(l) {
		return l
	}
	r := e.rhs.Exec(f)
	if types.IsError(r) {
		return r
	}
	var unk *types.Unknown
	unk, _ = types.MaybeMergeUnknowns(l, unk)
	unk, _ = types.MaybeMergeUnknowns(r, unk)
	if unk != nil {
		return unk
	}
	e.p.charge(1 + min(bytesCost(l), bytesCost(r)) + min(elems(l), elems(r)))
	eq := types.Equal(l, r)
	if e.not {
		return types.Bool(eq != types.True)
	}
	return eq
}

// stepsFunction wraps the range of every comprehension of a tracked
// program. It is not declared: the expression is rewritten after it was
// checked, and only the planner, which binds it to countedRange, sees it.
const stepsFunction = "@weir.steps"

// countSteps returns a copy of a in which the range of every comprehension
// goes through stepsFunction, so that every step is counted and watches
// for the task's cancellation.
func countSteps(a *cel.Ast) (*cel.Ast, error) {
	native := celast.Copy(a.NativeRep())
	var comps []celast.Expr
	celast.PostOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			comps = append(comps, e)
		}
	}))
	if len(comps) == 0 {
		return a, nil
	}
	fac := celast.NewExprFactory()
	id := celast.MaxID(native)
	for _, e := range comps {
		c := e.AsComprehension()
		native.SetType(id, native.GetType(c.IterRange().ID()))
		native.SetReference(id, celast.NewFunctionReference(stepsFunction))
		r := fac.NewCall(id, stepsFunction, c.IterRange())
		e.SetKindCase(fac.NewComprehensionTwoVar(e.ID(), r, c.IterVar(), c.IterVar2(), c.AccuVar(),
			c.AccuInit(), c.LoopCondition(), c.LoopStep(), c.Result()))
		id++
	}
	pb, err := celast.ToProto(native)
	if err != nil {
		return nil, err
	}
	return cel.CheckedExprToAstWithSource(pb, nil)
}

// countedRange is stepsFunction: the range, whose iterator counts.
func (p *Program) countedRange(v ref.Val) ref.Val {
	it, ok := v.(traits.Iterable)
	if !ok {
		return v // not a range: the comprehension fails as it would
	}
	return &countedRange{Val: v, it: it, p: p}
}

type countedRange struct {
	ref.Val // Type and the rest, for the comprehension's checks
	it      traits.Iterable
	p       *Program
}

func (r *countedRange) Iterator() traits.Iterator {
	return &countedIterator{Iterator: r.it.Iterator(), p: r.p}
}

// countedIterator charges every step of a comprehension, and stops the
// evaluation when its task is canceled.
type countedIterator struct {
	traits.Iterator
	p *Program
}

func (it *countedIterator) Next() ref.Val {
	select {
	case <-it.p.stop:
		panic(errInterruptPanic)
	default:
	}
	it.p.charge(1)
	return it.Iterator.Next()
}

// A guard returns the cost of the result of a call (see the meter), known
// before the call from its arguments without allocating, or false when it
// cannot tell (the arguments are not what it expects: the call then fails
// or succeeds as CEL decides).
type guard func(args []ref.Val, limit uint64) (uint64, bool)

var guards = map[string]guard{
	"replace": replaceCost,
	"split":   splitCost,
	"join":    joinCost,
	"format":  formatCost,
}

func replaceCost(args []ref.Val, _ uint64) (uint64, bool) {
	n, ok := replaceSize(args)
	return (n + 9) / 10, ok
}

func joinCost(args []ref.Val, limit uint64) (uint64, bool) {
	n, ok := joinSize(args, mulSat(limit, 10))
	return (n + 9) / 10, ok
}

func formatCost(args []ref.Val, limit uint64) (uint64, bool) {
	n, ok := formatSize(args, mulSat(limit, 10))
	return (n + 9) / 10, ok
}

// replaceSize is the length in bytes of s.replace(old, new[, n])
// (strings.Replace).
func replaceSize(args []ref.Val) (uint64, bool) {
	if len(args) != 3 && len(args) != 4 {
		return 0, false
	}
	s, ok1 := args[0].(types.String)
	old, ok2 := args[1].(types.String)
	repl, ok3 := args[2].(types.String)
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	n := int64(-1)
	if len(args) == 4 {
		i, ok := args[3].(types.Int)
		if !ok {
			return 0, false
		}
		n = int64(i)
	}
	size := uint64(len(s))
	if old == repl || n == 0 || len(repl) <= len(old) {
		return size, true // never longer than s
	}
	var m uint64
	if old == "" {
		m = uint64(utf8.RuneCountInString(string(s))) + 1
	} else {
		m = uint64(strings.Count(string(s), string(old)))
	}
	if n > 0 && uint64(n) < m {
		m = uint64(n)
	}
	return addSat(size, mulSat(m, uint64(len(repl)-len(old)))), true
}

// splitCost is the number of elements of s.split(sep[, n]).
func splitCost(args []ref.Val, _ uint64) (uint64, bool) {
	if len(args) != 2 && len(args) != 3 {
		return 0, false
	}
	s, ok1 := args[0].(types.String)
	sep, ok2 := args[1].(types.String)
	if !ok1 || !ok2 {
		return 0, false
	}
	var m uint64
	if sep == "" {
		m = uint64(utf8.RuneCountInString(string(s)))
	} else {
		m = uint64(strings.Count(string(s), string(sep))) + 1
	}
	if len(args) == 3 {
		n, ok := args[2].(types.Int)
		if !ok {
			return 0, false
		}
		if n >= 0 && uint64(n) < m {
			m = uint64(n)
		}
	}
	return m, true
}

// joinSize is the length in bytes of list.join([sep]), counted until it
// passes limit.
func joinSize(args []ref.Val, limit uint64) (uint64, bool) {
	if len(args) != 1 && len(args) != 2 {
		return 0, false
	}
	l, ok := args[0].(traits.Lister)
	if !ok {
		return 0, false
	}
	var sep types.String
	if len(args) == 2 {
		if sep, ok = args[1].(types.String); !ok {
			return 0, false
		}
	}
	n, ok := l.Size().(types.Int)
	if !ok {
		return 0, false
	}
	size := mulSat(uint64(max(n-1, 0)), uint64(len(sep)))
	for i := types.Int(0); i < n && size <= limit; i++ {
		s, ok := l.Get(i).(types.String)
		if !ok {
			return 0, false
		}
		size = addSat(size, uint64(len(s)))
	}
	return size, true
}

// formatSize bounds the length in bytes of fmt.format(args): the format
// string plus, for every value reachable from args, what formatting it
// can produce at most, counted until it passes limit. A list formatted
// twice in args, or shared by the elements of a list, counts each time,
// as it is printed each time.
func formatSize(args []ref.Val, limit uint64) (uint64, bool) {
	if len(args) != 2 {
		return 0, false
	}
	f, ok := args[0].(types.String)
	if !ok {
		return 0, false
	}
	size := uint64(len(f))
	formattedSize(args[1], &size, limit)
	return size, true
}

// maxScalarFormat bounds one formatted scalar: %f of the largest double
// with the largest precision format allows (100) is about 410 bytes.
const maxScalarFormat = 512

func formattedSize(v ref.Val, size *uint64, limit uint64) {
	if *size > limit {
		return
	}
	switch x := v.(type) {
	case types.String:
		// Quoted inside a list, a byte escapes to at most 4 (\x80).
		*size = addSat(*size, 4*uint64(len(x))+2)
	case types.Bytes:
		*size = addSat(*size, 4*uint64(len(x))+3)
	case traits.Lister:
		n, _ := x.Size().(types.Int)
		*size = addSat(*size, 2+2*uint64(max(n, 0)))
		for i := types.Int(0); i < n && *size <= limit; i++ {
			formattedSize(x.Get(i), size, limit)
		}
	case traits.Mapper:
		n, _ := x.Size().(types.Int)
		*size = addSat(*size, 2+4*uint64(max(n, 0)))
		it := x.Iterator()
		for it.HasNext() == types.True && *size <= limit {
			k := it.Next()
			formattedSize(k, size, limit)
			if val, found := x.Find(k); found {
				formattedSize(val, size, limit)
			}
		}
	default:
		*size = addSat(*size, maxScalarFormat)
	}
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func mulSat(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}
