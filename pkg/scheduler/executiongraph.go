package scheduler

import (
	"encoding/json"
	"fmt"
	"iter"
	"strings"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// ExecutionGraph is the parallel form of a job graph: every job vertex
// expanded into its subtasks, each with its current attempt.
type ExecutionGraph struct {
	JobID          string
	JobName        string
	MaxParallelism int
	// Parallelism is max(vertex parallelism): the number of slots the job needs.
	Parallelism int
	Config      map[string]string
	Vertices    []*ExecutionJobVertex
	// RestoreCheckpointID is the checkpoint the current attempts restore
	// from; 0 for none.
	RestoreCheckpointID int64
	// visited counts the subtasks visited by walks over the graph (see
	// subtasks).
	visited int
}

// ExecutionJobVertex is one job vertex (operator chain) and its subtasks.
type ExecutionJobVertex struct {
	JobVertex *jobgraph.JobVertex
	// Name is the operator ids of the chain joined with " -> ".
	Name string
	// operators are the chain's operators as JSON, head first, shared by
	// every deployment descriptor of the vertex.
	operators [][]byte
	// restore is the vertex's snapshot.TaskRestore of the current attempts,
	// shared by its subtasks; nil when they start from scratch.
	restore  []byte
	Subtasks []*ExecutionVertex
}

// ExecutionVertex is one subtask of a job vertex, with its current attempt.
type ExecutionVertex struct {
	Subtask int
	// Attempt numbers start at 0; a restart creates attempt+1.
	Attempt     int
	State       ExecutionState
	TaskManager string // where the attempt is deployed; "" before deployment
	Failure     string
	RecordsIn   int64
	RecordsOut  int64
}

// maxAttempt bounds JobSubmitted.FirstAttempt: attempts travel as int32,
// and restarts add to them.
const maxAttempt = 1 << 30

// newExecutionGraph builds the graph and checks the vertex structure the
// deployment descriptors rely on; jobgraph guarantees it, but a broken
// graph must fail the job, not panic the JobManager.
func newExecutionGraph(ev JobSubmitted) (*ExecutionGraph, error) {
	eg := &ExecutionGraph{JobID: ev.JobID, JobName: ev.Name, MaxParallelism: ev.MaxParallelism, Config: ev.Config}
	if len(ev.Vertices) == 0 {
		return eg, fmt.Errorf("job has no operators")
	}
	if ev.FirstAttempt < 0 || ev.FirstAttempt > maxAttempt {
		return eg, fmt.Errorf("invalid first attempt %d", ev.FirstAttempt)
	}
	n := len(ev.Vertices)
	for i, jv := range ev.Vertices {
		if jv == nil || jv.Index != i || len(jv.Operators) == 0 || jv.Parallelism < 1 {
			return eg, fmt.Errorf("invalid job graph: vertex %d is malformed", i)
		}
		ejv := &ExecutionJobVertex{JobVertex: jv}
		ids := make([]string, len(jv.Operators))
		for k, op := range jv.Operators {
			ids[k] = op.ID
			b, err := json.Marshal(op)
			if err != nil {
				return eg, fmt.Errorf("encode operator %q: %w", op.ID, err)
			}
			ejv.operators = append(ejv.operators, b)
		}
		ejv.Name = strings.Join(ids, " -> ")
		for st := 0; st < jv.Parallelism; st++ {
			ejv.Subtasks = append(ejv.Subtasks, &ExecutionVertex{Subtask: st, Attempt: ev.FirstAttempt, State: ExecutionCreated})
		}
		eg.Vertices = append(eg.Vertices, ejv)
		eg.Parallelism = max(eg.Parallelism, jv.Parallelism)
	}
	for _, jv := range ev.Vertices {
		for _, in := range jv.Inputs {
			if in.FromVertex < 0 || in.FromVertex >= n {
				return eg, fmt.Errorf("invalid job graph: vertex %d reads from unknown vertex %d", jv.Index, in.FromVertex)
			}
			if _, ok := producerOutput(ev.Vertices[in.FromVertex], jv.Index, in.InputIndex); !ok {
				return eg, fmt.Errorf("invalid job graph: vertex %d input %d has no matching output in vertex %d", jv.Index, in.InputIndex, in.FromVertex)
			}
			if in.Partition == jobgraph.Forward && ev.Vertices[in.FromVertex].Parallelism != jv.Parallelism {
				return eg, fmt.Errorf("invalid job graph: forward edge from vertex %d to %d changes parallelism", in.FromVertex, jv.Index)
			}
		}
		for _, out := range jv.Outputs {
			if out.ToVertex < 0 || out.ToVertex >= n {
				return eg, fmt.Errorf("invalid job graph: vertex %d writes to unknown vertex %d", jv.Index, out.ToVertex)
			}
		}
	}
	return eg, nil
}

// producerOutput finds the output of producer that feeds input inputIndex of
// vertex consumer.
func producerOutput(producer *jobgraph.JobVertex, consumer, inputIndex int) (jobgraph.VertexOutput, bool) {
	for _, o := range producer.Outputs {
		if o.ToVertex == consumer && o.InputIndex == inputIndex {
			return o, true
		}
	}
	return jobgraph.VertexOutput{}, false
}

// slotAssignment is where the job's slot i lives.
type slotAssignment struct {
	tm          string
	instance    uint64
	dataAddress string
}

// deploymentDescriptor builds the TDD of the current attempt of subtask st
// of vertex v. slots holds every slot of the job: consumers are deployed
// together with their producers, so every producer location is known.
func (eg *ExecutionGraph) deploymentDescriptor(v *ExecutionJobVertex, st int, slots []slotAssignment) *weirpb.TaskDeploymentDescriptor {
	jv := v.JobVertex
	ex := v.Subtasks[st]
	tdd := &weirpb.TaskDeploymentDescriptor{
		Execution:      ExecutionAttemptID{JobID: eg.JobID, Vertex: jv.Index, Subtask: st, Attempt: ex.Attempt}.Proto(),
		JobName:        eg.JobName,
		Parallelism:    int32(jv.Parallelism),
		MaxParallelism: int32(eg.MaxParallelism),
		Operators:      v.operators,
		Config:         eg.Config,
	}
	if v.restore != nil {
		tdd.RestoreState, tdd.RestoreCheckpointId = v.restore, eg.RestoreCheckpointID
	}
	for _, in := range jv.Inputs {
		producer := eg.Vertices[in.FromVertex]
		out, _ := producerOutput(producer.JobVertex, jv.Index, in.InputIndex) // checked in newExecutionGraph
		gate := &weirpb.InputGateDeploymentDescriptor{
			InputIndex:       int32(in.InputIndex),
			ProducerOperator: in.FromOperator,
			Partition:        in.Partition,
		}
		channel := func(p, subpartition int) *weirpb.InputChannelDeploymentDescriptor {
			return &weirpb.InputChannelDeploymentDescriptor{
				PartitionId:           PartitionID(eg.JobID, producer.JobVertex.Index, p, producer.Subtasks[p].Attempt, out.OutputIndex),
				Subpartition:          int32(subpartition),
				ProducerDataAddress:   slots[p].dataAddress,
				ProducerTaskmanagerId: slots[p].tm,
			}
		}
		if in.Partition == jobgraph.Forward {
			// Forward: subtask i reads the only subpartition of producer i.
			gate.Channels = append(gate.Channels, channel(st, 0))
		} else {
			// Every producer subtask j has one subpartition per consumer subtask.
			for p := range producer.Subtasks {
				gate.Channels = append(gate.Channels, channel(p, st))
			}
		}
		tdd.Inputs = append(tdd.Inputs, gate)
	}
	for _, out := range jv.Outputs {
		n := eg.Vertices[out.ToVertex].JobVertex.Parallelism
		if out.Partition == jobgraph.Forward {
			n = 1
		}
		tdd.Outputs = append(tdd.Outputs, &weirpb.ResultPartitionDeploymentDescriptor{
			PartitionId:      PartitionID(eg.JobID, jv.Index, st, ex.Attempt, out.OutputIndex),
			ConsumerOperator: out.ToOperator,
			Partition:        out.Partition,
			Key:              out.Key,
			NumSubpartitions: int32(n),
		})
	}
	return tdd
}

// setRestore prepares what the next attempts restore from: for each vertex
// the snapshot.TaskRestore of its chain's operators. From a durable
// directory it is only a pointer to the checkpoint's _metadata, which the
// TaskManagers read themselves; from jobmanager storage it carries the
// entries of every old subtask (the TaskManager picks its subtask's part)
// and must fit in maxRestoreBytes. md nil clears it: the attempts start
// from scratch.
func (eg *ExecutionGraph) setRestore(md *snapshot.Metadata) error {
	if md == nil {
		eg.RestoreCheckpointID = 0
		for _, v := range eg.Vertices {
			v.restore = nil
		}
		return nil
	}
	if md.Dir == "" {
		return fmt.Errorf("checkpoint %d has no location", md.CheckpointID)
	}
	pointer := snapshot.ReadableByTaskManagers(md.Dir)
	restores := make([][]byte, len(eg.Vertices))
	for i, v := range eg.Vertices {
		ids := make([]string, len(v.JobVertex.Operators))
		for j, op := range v.JobVertex.Operators {
			ids[j] = op.ID
		}
		tr := md.TaskRestore(ids)
		if pointer && len(tr.Operators) > 0 {
			tr.Operators, tr.FromMetadata = nil, true
		}
		b, err := snapshot.EncodeTaskRestore(tr)
		if err != nil {
			return fmt.Errorf("encode restore state of %s: %w", v.Name, err)
		}
		if len(b) > maxRestoreBytes {
			return fmt.Errorf("restore of %s from checkpoint %d: its subtasks would each receive %d bytes of state handles, more than the %d a deployment may carry; "+
				"jobmanager checkpoint storage cannot restore this job at this parallelism: set execution.checkpointing.dir", v.Name, md.CheckpointID, len(b), maxRestoreBytes)
		}
		restores[i] = b
	}
	eg.RestoreCheckpointID = md.CheckpointID
	for i, v := range eg.Vertices {
		v.restore = restores[i]
	}
	return nil
}

// maxRestoreBytes bounds the restore state in one deployment descriptor,
// far below gRPC's 4 MiB message limit. Only jobmanager storage comes near
// it: a durable checkpoint is sent as a pointer.
const maxRestoreBytes = 1 << 20

// subtasks iterates over the current attempts of every subtask, in vertex
// and subtask order. It counts what it visits (visited): the tests check
// that the work done per job stays linear in its subtasks.
func (eg *ExecutionGraph) subtasks() iter.Seq2[*ExecutionJobVertex, *ExecutionVertex] {
	return func(yield func(*ExecutionJobVertex, *ExecutionVertex) bool) {
		for _, v := range eg.Vertices {
			for _, ex := range v.Subtasks {
				eg.visited++
				if !yield(v, ex) {
					return
				}
			}
		}
	}
}
