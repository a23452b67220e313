package taskexec

import (
	"fmt"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/proto/weirpb"
)

type routing uint8

const (
	routeForward routing = iota
	routeRebalance
	routeHash
	routeBroadcast
)

// output is one ResultPartition of the tail and how records are routed to
// its subpartitions.
type output struct {
	p        *network.ResultPartition
	id       string
	consumer string
	route    routing
	key      string
	numSub   int
	maxP     int
	next     int // rebalance: the next subpartition
}

// outputCollector is the tail's Collector: it serialises each record once
// and writes it to every output partition. Used by the task goroutine only.
type outputCollector struct {
	outs      []*output
	scratch   []byte
	count     int64
	bytes     int64 // serialized record bytes written, once per subpartition written to
	flushEach bool  // execution.buffer-timeout 0: flush after every record
	// times is the task's time accounting: an emit while its partition is
	// unavailable (it may block for a buffer) counts as backpressured.
	times *taskTime
}

func newOutputCollector(d *weirpb.TaskDeploymentDescriptor, flushEach bool) *outputCollector {
	c := &outputCollector{flushEach: flushEach, scratch: make([]byte, 0, 256)}
	subtask := int(d.GetExecution().GetSubtask())
	for _, o := range d.GetOutputs() {
		out := &output{
			id:       o.GetPartitionId(),
			consumer: o.GetConsumerOperator(),
			key:      o.GetKey(),
			numSub:   int(o.GetNumSubpartitions()),
			maxP:     int(d.GetMaxParallelism()),
		}
		switch o.GetPartition() {
		case jobgraph.Forward:
			out.route = routeForward
		case jobgraph.Rebalance:
			out.route = routeRebalance
			// Start at the subtask index so that parallel producers do not
			// all send their first records to subpartition 0.
			out.next = subtask % out.numSub
		case jobgraph.Hash:
			out.route = routeHash
		case jobgraph.Broadcast:
			out.route = routeBroadcast
		}
		c.outs = append(c.outs, out)
	}
	return c
}

// Collect implements operator.Collector.
func (c *outputCollector) Collect(r *record.Record) error {
	c.count++
	if len(c.outs) == 0 {
		return nil
	}
	c.scratch = r.AppendBinary(c.scratch[:0])
	for _, o := range c.outs {
		// One atomic load per output and record; the clock is read only
		// while the output is out of buffers, when the consumers throttle
		// the task anyway.
		bp := c.times != nil && !o.p.IsAvailable()
		if bp {
			c.times.switchTo(stateBackPressured)
		}
		n := int64(len(c.scratch))
		var err error
		switch o.route {
		case routeForward:
			err = o.p.EmitRecord(0, c.scratch)
		case routeRebalance:
			err = o.p.EmitRecord(o.next, c.scratch)
			if o.next++; o.next == o.numSub {
				o.next = 0
			}
		case routeHash:
			v, ok := r.Get(o.key)
			if !ok {
				return &attributedError{fmt.Errorf("operator %q: record has no key field %q: %s", o.consumer, o.key, r.String())}
			}
			kg := state.KeyGroupFor(v, o.maxP)
			err = o.p.EmitRecord(state.SubtaskForKeyGroup(o.maxP, o.numSub, kg), c.scratch)
		case routeBroadcast:
			err = o.p.BroadcastRecord(c.scratch)
			n *= int64(o.numSub)
		}
		if bp {
			c.times.switchTo(stateBusy)
		}
		c.bytes += n
		if err != nil {
			return &attributedError{fmt.Errorf("emit to result partition %q (consumer %q): %w", o.id, o.consumer, err)}
		}
		if c.flushEach {
			o.p.Flush()
		}
	}
	return nil
}

// unavailable returns an output whose next emit may block under
// backpressure (network.ResultPartition.IsAvailable), or nil. One atomic
// load per output.
func (c *outputCollector) unavailable() *network.ResultPartition {
	for _, o := range c.outs {
		if o.p != nil && !o.p.IsAvailable() {
			return o.p
		}
	}
	return nil
}

// flush sends the partly filled buffers of every output.
func (c *outputCollector) flush() {
	for _, o := range c.outs {
		if o.p != nil {
			o.p.Flush()
		}
	}
}
