// Package jobgraph owns the job file: parsing it (YAML or JSON), validating
// it completely at submission, and turning its operator DAG into job
// vertices (chains of operators that run in one task).
//
// Invariants:
//   - a *JobGraph returned by Parse is valid: every operator type and
//     property is known and validated, expressions compile with the right
//     result type, the DAG is acyclic, every input exists, partitions are
//     resolved, parallelism is within max-parallelism. Nothing downstream
//     re-validates.
//   - a job within the limits (MaxOperators, MaxEdges, MaxParallelism,
//     MaxSubtasks) is the only kind the JobManager plans for, so the work
//     it does per job is bounded; its name is at most MaxNameLength bytes
//     of UTF-8 without control characters, since it is shown on terminals.
//   - an operator decoded from its JSON (DecodeOperator) reads the same
//     properties as at submission: integers are never rounded.
//   - Operators are in topological order (inputs before consumers), ties
//     broken by the order of the file, so vertex numbering is deterministic.
//   - an operator's ID is its identity for state in checkpoints and
//     savepoints; chaining never changes it.
//   - Parse reports the first error in file order, deterministically, in a
//     self-contained message prefixed by the file name and naming the
//     operator and field ("job.yaml: operator "evens": input "numbrs" does
//     not exist"). It never panics on input, not even when an operator
//     type's Validate does.
//
// The job file format is documented for users in docs/jobs.md.
package jobgraph

import (
	"bytes"
	"encoding/json"

	"github.com/weirstream/weir/pkg/operator"
)

// Partitioning strategies of an edge.
const (
	Forward   = "forward"
	Rebalance = "rebalance"
	Hash      = "hash"
	Broadcast = "broadcast"
)

// JobGraph is a validated job.
type JobGraph struct {
	Name           string
	Parallelism    int // job default
	MaxParallelism int
	// Config is the job's `config:` section, flattened to dotted keys.
	Config map[string]string
	// Operators in topological order.
	Operators []*Operator
}

// Operator is one node of the DAG. It is sent to TaskManagers as JSON.
type Operator struct {
	ID          string              `json:"id"`
	Type        string              `json:"type"`
	Parallelism int                 `json:"parallelism"` // resolved
	Properties  operator.Properties `json:"properties,omitempty"`
	Inputs      []Input             `json:"inputs,omitempty"`
}

// DecodeOperator decodes op from the JSON that encoding/json writes for an
// *Operator (a deployment descriptor carries one per operator of a chain).
// Numbers in its properties stay json.Number: an integer is never rounded
// through float64, so that the properties read the same at deployment as
// they did at submission (a float64 turns 2^53+1 into 2^53, and makes
// 2^63-1, an int64, into 2^63, which is not one).
func DecodeOperator(data []byte, op *Operator) error {
	if !json.Valid(data) {
		// Unmarshal's message for malformed JSON ("unexpected end of JSON
		// input"); a Decoder would only read the first value.
		var v any
		return json.Unmarshal(data, &v)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(op)
}

// Input is one incoming edge of an operator.
type Input struct {
	From      string `json:"from"`
	Partition string `json:"partition"` // resolved: never empty
	Key       string `json:"key,omitempty"`
}

// JobVertex is a chain of operators that runs as one task: forward-connected
// operators of equal parallelism where the upstream has exactly one consumer.
type JobVertex struct {
	Index       int
	Operators   []*Operator // head first
	Parallelism int
	Inputs      []VertexInput  // inputs of the head operator, in its input order
	Outputs     []VertexOutput // consumers of the tail operator
}

// VertexInput is an edge into a vertex's head.
type VertexInput struct {
	InputIndex   int // index in the head operator's Inputs
	FromVertex   int
	FromOperator string
	Partition    string
	Key          string
}

// VertexOutput is an edge out of a vertex's tail.
type VertexOutput struct {
	OutputIndex int // index among the tail's outputs; part of the partition id
	ToVertex    int
	ToOperator  string
	InputIndex  int // which input of the consumer's head this edge is
	Partition   string
	Key         string
}
