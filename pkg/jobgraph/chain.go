package jobgraph

// Operator returns the operator with the given id, or nil.
func (g *JobGraph) Operator(id string) *Operator {
	for _, op := range g.Operators {
		if op.ID == id {
			return op
		}
	}
	return nil
}

// consumer is one outgoing edge of an operator.
type consumer struct {
	op         *Operator
	inputIndex int
}

// consumers returns, per operator id, the edges leaving it: consumers in
// topological order, and for one consumer its inputs in order. This order
// numbers a vertex's outputs, so it must be deterministic.
func (g *JobGraph) consumers() map[string][]consumer {
	out := make(map[string][]consumer, len(g.Operators))
	for _, op := range g.Operators {
		for i, in := range op.Inputs {
			out[in.From] = append(out[in.From], consumer{op: op, inputIndex: i})
		}
	}
	return out
}

// chainable reports whether op runs in the same task as its input, as
// Flink's operator chaining decides: the records can be handed over by a
// function call, with no serialisation or network, only when every record
// of one upstream subtask goes to the same downstream subtask (forward,
// equal parallelism), the upstream feeds nobody else, and op reads nothing
// else.
func chainable(op *Operator, byID map[string]*Operator, cons map[string][]consumer) bool {
	if len(op.Inputs) != 1 {
		return false
	}
	in := op.Inputs[0]
	from := byID[in.From]
	return in.Partition == Forward && from != nil &&
		from.Parallelism == op.Parallelism && len(cons[in.From]) == 1
}

// Vertices chains the operators into job vertices (see chainable). Vertex
// indexes follow the topological order of their heads, which is a
// topological order of the vertices: edges between vertices only enter
// heads, so a vertex's inputs come from vertices with smaller indexes.
// Every call computes fresh vertices; the operators are shared with g.
func (g *JobGraph) Vertices() []*JobVertex {
	byID := make(map[string]*Operator, len(g.Operators))
	for _, op := range g.Operators {
		byID[op.ID] = op
	}
	cons := g.consumers()
	vertexOf := make(map[string]*JobVertex, len(g.Operators))
	var vs []*JobVertex
	for _, op := range g.Operators {
		if chainable(op, byID, cons) {
			v := vertexOf[op.Inputs[0].From]
			v.Operators = append(v.Operators, op)
			vertexOf[op.ID] = v
			continue
		}
		v := &JobVertex{Index: len(vs), Operators: []*Operator{op}, Parallelism: op.Parallelism}
		vs = append(vs, v)
		vertexOf[op.ID] = v
	}
	for _, v := range vs {
		head := v.Operators[0]
		for i, in := range head.Inputs {
			v.Inputs = append(v.Inputs, VertexInput{
				InputIndex:   i,
				FromVertex:   vertexOf[in.From].Index,
				FromOperator: in.From,
				Partition:    in.Partition,
				Key:          in.Key,
			})
		}
		tail := v.Operators[len(v.Operators)-1]
		for _, c := range cons[tail.ID] {
			in := c.op.Inputs[c.inputIndex]
			v.Outputs = append(v.Outputs, VertexOutput{
				OutputIndex: len(v.Outputs),
				ToVertex:    vertexOf[c.op.ID].Index,
				ToOperator:  c.op.ID,
				InputIndex:  c.inputIndex,
				Partition:   in.Partition,
				Key:         in.Key,
			})
		}
	}
	return vs
}

// MaxParallelismOfVertices is the number of slots the job needs: with slot
// sharing, one slot holds one subtask of every vertex, so the widest vertex
// decides. (Not to be confused with JobGraph.MaxParallelism, the number of
// key groups.)
func (g *JobGraph) MaxParallelismOfVertices() int {
	n := 0
	for _, op := range g.Operators {
		n = max(n, op.Parallelism)
	}
	return n
}
