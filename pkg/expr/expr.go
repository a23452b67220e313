package expr

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/weirstream/weir/pkg/record"
)

// ResultType is what an expression must return.
type ResultType int

// The result types of the operators.
const (
	ResultBool       ResultType = iota // filter
	ResultMap                          // map: one record out per record in
	ResultListOfMaps                   // flatMap: zero or more records out
)

// String returns the CEL type an expression of r must have.
func (r ResultType) String() string {
	switch r {
	case ResultBool:
		return "bool"
	case ResultMap:
		return "map(string, dyn)"
	case ResultListOfMaps:
		return "list(map(string, dyn))"
	}
	return fmt.Sprintf("ResultType(%d)", int(r))
}

// varName is the variable that holds the input record.
const varName = "record"

// env is shared by all compilations: building it takes milliseconds, and a
// cel.Env is safe for concurrent use.
var env = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varName, cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
})

// Program is a compiled expression. It must be used by one goroutine at a
// time; see the package doc and Clone.
type Program struct {
	source string
	want   ResultType
	ast    *cel.Ast // checked: tracked programs are planned from it
	// maxCost is the most one evaluation can cost whatever the input
	// (staticCost), unbounded when that depends on the input's sizes.
	maxCost uint64
	prg     cel.Program // without cost tracking; shared by clones
	// keyOrders holds the constant string keys of each map literal in the
	// expression, in source order, to order output fields (see orderKeys).
	keyOrders [][]ref.Val
	// lit is the fast path of a map literal root (or a list of them), nil
	// if the expression has another shape; see literalPlan.
	lit *literalPlan
	// fastBool is the fast path (fast.go) of a ResultBool expression, nil
	// if it is outside the subset.
	fastBool func(*fastCtx) (bool, bool)
	// hints and slots shape the fast paths' fastCtx: the name of each
	// field hint, the number of value slots.
	hints []string
	slots int

	// limit and stop are the Limits (see SetLimits).
	limit uint64
	stop  <-chan struct{}
	// tracked is this Program's own cost-tracked, interruptible program,
	// nil when maxCost <= min(limit, maxUntracked): then no input can make
	// an evaluation exceed the limit or last long, and it runs prg (or
	// lit) at full speed.
	tracked cel.Program

	// Per-evaluation scratch, reused so evaluation does not allocate it.
	act activation
	// budget is what is left of the limit for converting the result
	// (toValue).
	budget uint64
	// cost is what a tracked evaluation has cost so far (see the meter
	// in cost.go).
	cost uint64
	// inCopy is the copy of the input record the result contains, made
	// once per evaluation however often the result contains the input.
	inCopy  *record.Record
	scratch record.Record  // the record EvalList passes to emit
	keys    []ref.Val      // sorted keys of an unordered map
	direct  []record.Value // per entry of lit: constant or fast value
	vals    []ref.Val      // per entry of lit: CEL result, or nil
	fast    fastCtx        // the fast paths' input and field hints
	// fastMisses counts the evaluations (or literal values) that the
	// fast path handed to CEL, for tests.
	fastMisses uint64
}

// Compile parses and type-checks source, whose result must be of type want
// (or dyn, checked at run time).
func Compile(source string, want ResultType) (*Program, error) {
	if want < ResultBool || want > ResultListOfMaps {
		return nil, fmt.Errorf("expression %q: unknown result type %d", source, int(want))
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	ast, iss := e.Compile(source)
	if iss.Err() != nil {
		return nil, fmt.Errorf("expression %q does not compile: %w", source, iss.Err())
	}
	if out := ast.OutputType(); !acceptable(out, want) {
		return nil, fmt.Errorf("expression %q returns %s, want %s", source, cel.FormatCELType(out), want)
	}
	prg, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("expression %q: plan: %w", source, err)
	}
	p := &Program{
		source:    source,
		want:      want,
		ast:       ast,
		maxCost:   staticCost(e, ast),
		prg:       prg,
		keyOrders: mapLiteralKeys(ast.NativeRep().Expr()),
	}
	p.planFast(e)
	if err := p.SetLimits(Limits{}); err != nil {
		return nil, err
	}
	return p, nil
}

// SetLimits sets the cost limit of every evaluation and the channel that
// interrupts one. Compile sets the default limit and no channel; an
// operator sets the job's weir.expression.cost-limit and its task's
// cancellation when it opens, before the first evaluation.
func (p *Program) SetLimits(l Limits) error {
	if l.CostLimit == 0 {
		l.CostLimit = DefaultCostLimit
	}
	p.limit, p.stop, p.tracked, p.cost = l.CostLimit, l.Done, nil, 0
	if p.maxCost <= min(p.limit, maxUntracked) {
		return nil
	}
	e, err := env()
	if err != nil {
		return fmt.Errorf("build CEL environment: %w", err)
	}
	if p.tracked, err = p.planTracked(e, p.ast); err != nil {
		return fmt.Errorf("expression %q: plan with cost limit: %w", p.source, err)
	}
	return nil
}

// Clone returns a Program sharing the compiled expression but with its own
// scratch space, for use by another goroutine. It has the same limits.
func (p *Program) Clone() (*Program, error) {
	c := &Program{
		source: p.source, want: p.want, ast: p.ast, maxCost: p.maxCost,
		prg: p.prg, keyOrders: p.keyOrders, lit: p.lit, fastBool: p.fastBool, hints: p.hints, slots: p.slots,
	}
	c.newScratch()
	if err := c.SetLimits(Limits{CostLimit: p.limit, Done: p.stop}); err != nil {
		return nil, err
	}
	return c, nil
}

// planFast plans the fast paths: the literal plan of a map or list root,
// the compiled closures of a bool one. p must have its keyOrders and
// maxCost set.
func (p *Program) planFast(e *cel.Env) {
	var fc fastCompiler
	root := p.ast.NativeRep()
	p.lit = planLiteral(e, root, p, &fc)
	if p.want == ResultBool {
		// Planned whatever the cost (compiling evaluates nothing), used
		// only when the expression runs untracked.
		if n, ok := fc.compile(root.Expr()); ok {
			p.fastBool, _ = asBool(n)
		}
	}
	p.hints, p.slots = fc.hints, fc.vals
	p.newScratch()
}

// newScratch allocates the per-evaluation scratch of p's fast paths.
func (p *Program) newScratch() {
	p.direct, p.vals = p.lit.newScratch()
	p.fast.hints = newHints(p.hints)
	p.fast.vals = make([]record.Value, p.slots)
}

// Source returns the expression's text.
func (p *Program) Source() string { return p.source }

// acceptable reports whether a checked result type t can satisfy want:
// exactly, or through dyn parts that are checked at run time.
func acceptable(t *cel.Type, want ResultType) bool {
	if isDyn(t) {
		return true
	}
	switch want {
	case ResultBool:
		return t.Kind() == types.BoolKind
	case ResultMap:
		return isStringMap(t)
	case ResultListOfMaps:
		if t.Kind() != types.ListKind {
			return false
		}
		ps := t.Parameters()
		return len(ps) == 1 && (isDyn(ps[0]) || isStringMap(ps[0]))
	}
	return false
}

func isDyn(t *cel.Type) bool {
	k := t.Kind()
	return k == types.DynKind || k == types.AnyKind || k == types.TypeParamKind
}

func isStringMap(t *cel.Type) bool {
	if t.Kind() != types.MapKind {
		return false
	}
	ps := t.Parameters()
	return len(ps) == 2 && (isDyn(ps[0]) || ps[0].Kind() == types.StringKind)
}

// mapLiteralKeys returns the keys of each map literal in e whose keys are
// all string constants, in source order. A repeated key is kept once, at
// its first place, as in the map CEL builds.
func mapLiteralKeys(e celast.Expr) [][]ref.Val {
	var orders [][]ref.Val
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		if x.Kind() != celast.MapKind {
			return
		}
		entries := x.AsMap().Entries()
		keys := make([]ref.Val, 0, len(entries))
		for _, en := range entries {
			k := en.AsMapEntry().Key()
			if k.Kind() != celast.LiteralKind {
				return
			}
			s, ok := k.AsLiteral().(types.String)
			if !ok {
				return
			}
			if !slices.Contains(keys, ref.Val(s)) {
				keys = append(keys, s)
			}
		}
		if len(keys) > 0 {
			orders = append(orders, keys)
		}
	}))
	return orders
}

// eval runs the program on in and returns a CEL value that is not an error.
// On success p.act.in is left set, for toValue; the caller clears it with
// release.
func (p *Program) eval(in *record.Record) (ref.Val, error) {
	p.budget = p.limit
	if p.tracked == nil {
		return p.evalProgram(p.prg, in)
	}
	p.act.in = (*recordMap)(in)
	p.cost = 0
	out, _, err := p.tracked.Eval(&p.act)
	p.budget -= min(p.cost, p.limit)
	return p.result(in, out, err)
}

// evalProgram runs prg, the untracked program or one of its literalPlan's,
// on in.
func (p *Program) evalProgram(prg cel.Program, in *record.Record) (ref.Val, error) {
	p.act.in = (*recordMap)(in)
	out, _, err := prg.Eval(&p.act)
	return p.result(in, out, err)
}

func (p *Program) result(in *record.Record, out ref.Val, err error) (ref.Val, error) {
	if err == nil && (out == nil || types.IsUnknownOrError(out)) {
		err = fmt.Errorf("result is %v", out)
	}
	if err != nil {
		p.release()
		return nil, p.failed(in, err)
	}
	return out, nil
}

// release drops what the evaluation of one record left behind: the input
// record must not be retained.
func (p *Program) release() {
	p.act.in = nil
	p.fast.in = nil
	clear(p.fast.vals)
	p.inCopy = nil
}

// maxRecordInError bounds how much of a record an error message quotes.
const maxRecordInError = 512

// errConvertBudget is toValue's error when converting the result would
// take the evaluation past the cost limit.
var errConvertBudget = errors.New("cost limit exceeded converting the result")

func (p *Program) failed(in *record.Record, err error) error {
	var ce interpreter.EvalCancelledError
	switch {
	case errors.Is(err, errConvertBudget):
		return &CostLimitError{Source: p.source, Limit: p.limit}
	case errors.As(err, &ce) && ce.Cause == interpreter.CostLimitExceeded:
		return &CostLimitError{Source: p.source, Limit: p.limit}
	case errors.As(err, &ce) && ce.Cause == interpreter.ContextCancelled:
		return ErrInterrupted
	}
	js := in.AppendJSON(nil)
	if len(js) > maxRecordInError {
		js = append(js[:maxRecordInError], "..."...)
	}
	return &EvalError{Source: p.source, Record: string(js), Err: err}
}

// EvalError is a run-time failure of an expression on one record.
type EvalError struct {
	Source string // the expression
	Record string // the input record as JSON, cut after 512 bytes
	Err    error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("expression %q failed on record %s: %v", e.Source, e.Record, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// EvalBool evaluates a ResultBool expression on in.
func (p *Program) EvalBool(in *record.Record) (bool, error) {
	if p.fastBool != nil && p.tracked == nil {
		p.fast.in = in
		b, ok := p.fastBool(&p.fast)
		p.fast.in = nil
		clear(p.fast.vals)
		if ok {
			return b, nil
		}
		p.fastMisses++ // CEL gives the result, or the error, of this record
	}
	out, err := p.eval(in)
	if err != nil {
		return false, err
	}
	p.release()
	b, ok := out.(types.Bool)
	if !ok {
		return false, p.failed(in, fmt.Errorf("result is %s, want bool", out.Type().TypeName()))
	}
	return bool(b), nil
}

// EvalMap evaluates a ResultMap expression on in and writes the resulting
// map to out (after out.Reset()). Keys must be strings.
func (p *Program) EvalMap(in *record.Record, out *record.Record) error {
	if in == out {
		// The result may share the input's fields, and out is reset first.
		return p.failed(in, errors.New("EvalMap needs distinct input and output records"))
	}
	out.Reset()
	if p.lit != nil && p.tracked == nil {
		return p.evalMapLiteral(in, out)
	}
	res, err := p.eval(in)
	if err != nil {
		return err
	}
	defer p.release()
	m, ok := res.(traits.Mapper)
	if !ok {
		return p.failed(in, fmt.Errorf("result is %s, want map", res.Type().TypeName()))
	}
	if err := p.mapInto(m, out); err != nil {
		out.Reset()
		return p.failed(in, err)
	}
	return nil
}

// EvalList evaluates a ResultListOfMaps expression on in and calls emit
// with each element, in order, converted to a record. Every element must be
// a map with string keys. emit gets the same *record.Record each time,
// valid only until it returns: it must copy what it keeps. An error from
// emit stops the evaluation and is returned as is.
func (p *Program) EvalList(in *record.Record, emit func(*record.Record) error) error {
	if p.lit != nil && p.tracked == nil {
		return p.evalListLiteral(in, emit)
	}
	res, err := p.eval(in)
	if err != nil {
		return err
	}
	defer p.release()
	l, ok := res.(traits.Lister)
	if !ok {
		return p.failed(in, fmt.Errorf("result is %s, want list", res.Type().TypeName()))
	}
	n, _ := l.Size().(types.Int)
	for i := types.Int(0); i < n; i++ {
		if p.budget < convertCost {
			return p.failed(in, errConvertBudget)
		}
		p.budget -= convertCost
		el := l.Get(i)
		m, ok := el.(traits.Mapper)
		if !ok {
			return p.failed(in, fmt.Errorf("list element %d is %s, want map", i, el.Type().TypeName()))
		}
		p.scratch.Reset()
		if err := p.mapInto(m, &p.scratch); err != nil {
			p.scratch.Reset()
			return p.failed(in, fmt.Errorf("list element %d: %w", i, err))
		}
		if err := emit(&p.scratch); err != nil {
			p.scratch.Reset()
			return err
		}
	}
	p.scratch.Reset()
	return nil
}

// activation presents the input record to CEL as the variable `record`
// without building a map of variables.
type activation struct{ in *recordMap }

func (a *activation) ResolveName(name string) (any, bool) {
	if name == varName && a.in != nil {
		return a.in, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
