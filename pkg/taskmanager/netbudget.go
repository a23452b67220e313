package taskmanager

import (
	"fmt"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

// networkBudget is the TaskManager's network memory counted in buffers
// (config.DeriveNetworkMemory: Flink's taskmanager.memory.network.fraction,
// .min and .max of taskmanager.memory.process.size). As Flink's
// NetworkBufferPool refuses a task whose buffers do not fit ("insufficient
// number of network buffers"), each attempt reserves at deployment the most
// buffers its result partitions and input gates may hold, and gives them
// back when its Run returns; an attempt that does not fit is refused, so
// the buffers of all tasks together never outgrow the budget, whatever the
// per-channel settings. Those settings are never shrunk to fit: explicit
// buffers-per-channel, floating-buffers-per-gate and segment-size win, and
// decide what a task needs. Guarded by TaskManager.mu.
type networkBudget struct {
	total int64 // buffers; 0: no budget (no taskmanager.memory.process.size)
	used  int64
	mem   config.NetworkMemory
}

// taskBuffers is the most network buffers the attempt d may hold on a
// TaskManager whose data server is at localAddr, as package network sizes
// its pools: a result partition of n subpartitions holds at most
// max(n*buffersPerChannel+floating, n+1); an input gate gives each remote
// channel buffersPerChannel exclusive buffers and lends floating ones
// (local channels read the producer's buffers).
func taskBuffers(d *weirpb.TaskDeploymentDescriptor, localAddr string, buffersPerChannel, floating int) int64 {
	bpc, fl := int64(buffersPerChannel), int64(floating)
	var n int64
	for _, o := range d.GetOutputs() {
		sub := int64(o.GetNumSubpartitions())
		n += max(sub*bpc+fl, sub+1)
	}
	for _, g := range d.GetInputs() {
		var remote int64
		for _, c := range g.GetChannels() {
			if c.GetProducerDataAddress() != localAddr {
				remote++
			}
		}
		if remote > 0 {
			n += remote*bpc + fl
		}
	}
	return n
}

// reserve takes need buffers for an attempt that replaces one holding
// prevHeld (which it takes over: the old attempt ends before the new one
// runs), or says why they do not fit.
func (b *networkBudget) reserve(task string, need, prevHeld int64) error {
	if b.total == 0 {
		return nil
	}
	if free := b.total - b.used + prevHeld; need > free {
		return fmt.Errorf("insufficient network buffers: task %s needs %d buffers of %d bytes, %d of this TaskManager's %d are free "+
			"(network memory %d bytes: %s, %s and %s of %s; or lower %s, %s or the parallelism)",
			task, need, b.mem.SegmentSize, free, b.total, b.mem.Bytes,
			config.NetworkMemoryFraction.Key, config.NetworkMemoryMin.Key, config.NetworkMemoryMax.Key, config.TaskManagerProcessSize.Key,
			config.BuffersPerChannel.Key, config.FloatingBuffersPerGate.Key)
	}
	b.used += need - prevHeld
	return nil
}

func (b *networkBudget) release(n int64) { b.used -= n }
