// Package expr owns user expressions: CEL (github.com/google/cel-go)
// programs over records, used by filter, map and flatMap operators.
//
// An expression sees the input record as the variable `record`, declared
// map(string, dyn): `record.seq % 2 == 0`, `{"word": record.line, "n": 1}`,
// `record.line.split(" ").map(w, {"word": w})`. The standard library and
// macros and the strings extension (split, lowerAscii, ...) are enabled.
//
// Compile parses and type-checks at job submission, so that a bad
// expression fails the submission with a clear message, not the job at run
// time. A result type CEL can only know at run time (dyn) is accepted and
// checked per record.
//
// # Invariants
//
//   - The input record is never converted to a Go map: CEL reads it through
//     a ref.Val over *record.Record (recordMap), converting only the fields
//     an expression touches.
//   - Evaluation never modifies the input record and never retains it:
//     results that contain the input record itself are deep enough copies.
//     (A field read's hint keeps the record's string of the field's name,
//     which is no longer than the name in the expression.)
//   - Int stays int and float stays float in both directions; a CEL uint
//     result becomes an int (error if above MaxInt64).
//   - Output maps keep a deterministic field order. CEL's own maps are
//     unordered, so the order is recovered from the expression: a map whose
//     keys are exactly those of a map literal with constant string keys
//     gets them in the order written (of the first such literal); the input
//     record's (or a nested input map's) order is kept; any other map
//     (built with dynamic keys) has its keys sorted.
//   - Run-time errors name the expression and the record
//     (`expression "..." failed on record {...}: division by zero`), except
//     the cost limit's, which names the expression and the limit.
//   - One evaluation (one record, converting its result included) costs at
//     most the cost limit, allocates at most about 45 bytes per unit of it,
//     and stops within one comprehension step once Limits.Done is closed.
//   - The fast paths (below) are an optimisation only: their output and
//     errors are exactly those of CEL evaluating the whole expression.
//
// # The fast path
//
// CEL's interpreter boxes every value it touches into a ref.Val and builds
// a Go map for every map literal. After cel-go has type-checked an
// expression, Compile also compiles it, when every node is in a subset
// (fast.go: literals, field reads, arithmetic, comparisons, && || ! ?:,
// int(), double(), size(), startsWith, endsWith, contains), to a tree of
// Go closures over the record's own values, which allocates nothing. A
// filter runs its closures; a map operator's map literal is planned as one
// value per key (see literalPlan), each a constant computed once, a
// compiled value, or, outside the subset, its own CEL program.
//
// The closures never fail: on anything but the plain case (a missing
// field, a value of another type, an overflow, a division by zero, NaN
// ordered) they give up, and CEL evaluates the expression (or the value)
// on that record, with its own result or error. So results, output field
// order and error messages are CEL's, which TestFastPathMatchesCEL and
// FuzzFastPathMatchesCEL check by evaluating both ways.
//
// Field reads remember, per read, where the field was found last time and
// the name string the record used: records from one edge share their field
// order and name strings, so a read is usually one pointer comparison.
//
// The fast path runs only for expressions that run untracked (below): an
// expression whose cost depends on its input (concatenating two fields
// that could be long strings, a comprehension) is counted by the meter,
// which the fast path cannot do.
//
// # Cost
//
// Every evaluation has a cost limit (weir.expression.cost-limit, set with
// SetLimits). Compile estimates with cel-go's static cost estimator the
// most an evaluation can cost whatever the record; when that is within
// the limit and maxUntracked (no comprehension over the record, no
// function whose cost depends on a field's length: the usual filters and
// map literals), evaluation runs as planned, with nothing counted. Any
// other expression runs as a tracked program, the Program's own, which
// counts its cost as it goes (the meter, cost.go): every function binding
// is wrapped to count its call and the sizes of its arguments and result,
// == and != and literals count too, and every comprehension's range is
// wrapped so that each step counts one unit and watches Limits.Done. The
// calls whose result can be far larger than their arguments (replace,
// split, join, format) compute its size first and stop the evaluation
// before allocating it. Past the limit, an evaluation fails with a
// *CostLimitError. cel-go's own runtime cost tracker is not used: it takes
// time in the square of a comprehension's length, counts some steps as
// nothing, and checks the limit only after a call has allocated.
//
// # Concurrency
//
// A *Program holds per-evaluation scratch space and must be used by one
// goroutine at a time (one per operator subtask). The compiled CEL program
// and the fast path's closures inside are immutable and shared; the fast
// path's field hints and value slots are per Program. Clone returns an
// independent *Program for another goroutine cheaply.
//
// # Allocations
//
// CEL allocates per evaluation; the fast path does not, and this package
// adds little (measured with Go 1.26 and cel-go v0.31.0, see bench_test.go
// and TestFastPathAllocs):
//
//   - EvalBool of an expression in the fast path's subset, such as
//     `record.seq % 2 == 0` or
//     `record.line.startsWith("the") && record.score > 0.1`: 0 (CEL boxes
//     each int above 255 and each string it reads), as long as the record
//     takes the fast path; a record handed to CEL costs what CEL allocates.
//   - EvalMap of `record`: 0. Of a map literal whose values are constants
//     or in the fast path's subset, such as `{"word": record.line, "n": 1}`
//     or `{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`:
//     0 (CEL's map literal cost 5 to 7). Any other value costs what CEL
//     allocates evaluating it alone.
//   - EvalList of `record.line.split(" ").map(w, {"word": w})` on 4 words:
//     about 66, nearly all inside CEL (split, the map macro concatenating
//     one-element lists, one CEL map per word), 10 of them the meter's (a
//     tracked program: the counted range, the literals' wrappers).
//   - Reading a list field: 1 (a view over the record's values, whose
//     elements are converted when read), not one per element.
package expr
