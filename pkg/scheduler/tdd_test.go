package scheduler

import (
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/proto/weirpb"
)

// diamond is src(2) -forward-> [map -> filter](2) -rebalance-> agg(3), and
// src -hash(k)-> agg: forward and all-to-all edges, a chain, and a vertex
// with two inputs.
func diamond() []*jobgraph.JobVertex {
	src := &jobgraph.Operator{ID: "src", Type: "gen", Parallelism: 2, Properties: map[string]any{"rate": 10}}
	m := &jobgraph.Operator{ID: "map", Type: "map", Parallelism: 2, Inputs: []jobgraph.Input{{From: "src", Partition: jobgraph.Forward}}}
	f := &jobgraph.Operator{ID: "filter", Type: "filter", Parallelism: 2, Inputs: []jobgraph.Input{{From: "map", Partition: jobgraph.Forward}}}
	agg := &jobgraph.Operator{ID: "agg", Type: "aggregate", Parallelism: 3, Inputs: []jobgraph.Input{
		{From: "src", Partition: jobgraph.Hash, Key: "k"}, {From: "filter", Partition: jobgraph.Rebalance}}}
	return []*jobgraph.JobVertex{
		{Index: 0, Parallelism: 2, Operators: []*jobgraph.Operator{src}, Outputs: []jobgraph.VertexOutput{
			{OutputIndex: 0, ToVertex: 1, ToOperator: "map", InputIndex: 0, Partition: jobgraph.Forward},
			{OutputIndex: 1, ToVertex: 2, ToOperator: "agg", InputIndex: 0, Partition: jobgraph.Hash, Key: "k"},
		}},
		{Index: 1, Parallelism: 2, Operators: []*jobgraph.Operator{m, f},
			Inputs:  []jobgraph.VertexInput{{InputIndex: 0, FromVertex: 0, FromOperator: "src", Partition: jobgraph.Forward}},
			Outputs: []jobgraph.VertexOutput{{OutputIndex: 0, ToVertex: 2, ToOperator: "agg", InputIndex: 1, Partition: jobgraph.Rebalance}}},
		{Index: 2, Parallelism: 3, Operators: []*jobgraph.Operator{agg}, Inputs: []jobgraph.VertexInput{
			{InputIndex: 0, FromVertex: 0, FromOperator: "src", Partition: jobgraph.Hash, Key: "k"},
			{InputIndex: 1, FromVertex: 1, FromOperator: "filter", Partition: jobgraph.Rebalance},
		}},
	}
}

func TestDeploymentDescriptors(t *testing.T) {
	s := New(spread)
	s.Step(t0, reg("a", 2))
	s.Step(t0, reg("b", 2))
	cfg := map[string]string{"heartbeat.interval": "10s", "pipeline.name": "x"}
	acts := s.Step(t0, JobSubmitted{JobID: "j", Name: "diamond", MaxParallelism: 128, Vertices: diamond(), Config: cfg})
	tdds := map[string]*weirpb.TaskDeploymentDescriptor{}
	where := map[string]string{}
	for _, a := range acts {
		if d, ok := a.(Deploy); ok {
			id := ExecutionAttemptIDFromProto(d.TDD.Execution).String()
			tdds[id], where[id] = d.TDD, d.TaskManagerID
		}
	}
	if len(tdds) != 7 {
		t.Fatalf("%d deployments, want 7", len(tdds))
	}
	// Slots: 0 -> a, 1 -> b, 2 -> a (most free first, ties to the lowest id).
	for id, tm := range map[string]string{"j/0/0#0": "a", "j/0/1#0": "b", "j/1/0#0": "a", "j/1/1#0": "b", "j/2/0#0": "a", "j/2/1#0": "b", "j/2/2#0": "a"} {
		if where[id] != tm {
			t.Errorf("%s deployed on %q, want %q", id, where[id], tm)
		}
	}
	ch := func(partition string, sub int32, tm string) *weirpb.InputChannelDeploymentDescriptor {
		return &weirpb.InputChannelDeploymentDescriptor{PartitionId: partition, Subpartition: sub, ProducerDataAddress: tm + ":2", ProducerTaskmanagerId: tm}
	}
	want := map[string]*weirpb.TaskDeploymentDescriptor{
		"j/0/0#0": {
			Execution: &weirpb.ExecutionAttemptID{JobId: "j", Vertex: 0, Subtask: 0}, JobName: "diamond", Parallelism: 2, MaxParallelism: 128,
			Operators: [][]byte{[]byte(`{"id":"src","type":"gen","parallelism":2,"properties":{"rate":10}}`)},
			Config:    cfg,
			Outputs: []*weirpb.ResultPartitionDeploymentDescriptor{
				{PartitionId: "j/0/0/0/0", ConsumerOperator: "map", Partition: "forward", NumSubpartitions: 1},
				{PartitionId: "j/0/0/0/1", ConsumerOperator: "agg", Partition: "hash", Key: "k", NumSubpartitions: 3},
			},
		},
		"j/1/1#0": {
			Execution: &weirpb.ExecutionAttemptID{JobId: "j", Vertex: 1, Subtask: 1}, JobName: "diamond", Parallelism: 2, MaxParallelism: 128,
			Operators: [][]byte{
				[]byte(`{"id":"map","type":"map","parallelism":2,"inputs":[{"from":"src","partition":"forward"}]}`),
				[]byte(`{"id":"filter","type":"filter","parallelism":2,"inputs":[{"from":"map","partition":"forward"}]}`),
			},
			Config: cfg,
			Inputs: []*weirpb.InputGateDeploymentDescriptor{
				{InputIndex: 0, ProducerOperator: "src", Partition: "forward", Channels: []*weirpb.InputChannelDeploymentDescriptor{ch("j/0/1/0/0", 0, "b")}},
			},
			Outputs: []*weirpb.ResultPartitionDeploymentDescriptor{
				{PartitionId: "j/1/1/0/0", ConsumerOperator: "agg", Partition: "rebalance", NumSubpartitions: 3},
			},
		},
		"j/2/2#0": {
			Execution: &weirpb.ExecutionAttemptID{JobId: "j", Vertex: 2, Subtask: 2}, JobName: "diamond", Parallelism: 3, MaxParallelism: 128,
			Operators: [][]byte{[]byte(`{"id":"agg","type":"aggregate","parallelism":3,"inputs":[{"from":"src","partition":"hash","key":"k"},{"from":"filter","partition":"rebalance"}]}`)},
			Config:    cfg,
			Inputs: []*weirpb.InputGateDeploymentDescriptor{
				{InputIndex: 0, ProducerOperator: "src", Partition: "hash", Channels: []*weirpb.InputChannelDeploymentDescriptor{
					ch("j/0/0/0/1", 2, "a"), ch("j/0/1/0/1", 2, "b")}},
				{InputIndex: 1, ProducerOperator: "filter", Partition: "rebalance", Channels: []*weirpb.InputChannelDeploymentDescriptor{
					ch("j/1/0/0/0", 2, "a"), ch("j/1/1/0/0", 2, "b")}},
			},
		},
	}
	for id, w := range want {
		if !proto.Equal(tdds[id], w) {
			t.Errorf("TDD of %s:\n%s\nwant:\n%s", id, prototext.Format(tdds[id]), prototext.Format(w))
		}
	}
}

func TestPartitionID(t *testing.T) {
	if got := PartitionID("0123abcd", 2, 3, 1, 0); got != "0123abcd/2/3/1/0" {
		t.Fatalf("PartitionID = %q", got)
	}
}
