package taskmanager

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

func TestTaskBuffers(t *testing.T) {
	ch := func(addr string) *weirpb.InputChannelDeploymentDescriptor {
		return &weirpb.InputChannelDeploymentDescriptor{ProducerDataAddress: addr}
	}
	d := &weirpb.TaskDeploymentDescriptor{
		Outputs: []*weirpb.ResultPartitionDeploymentDescriptor{{NumSubpartitions: 4}, {NumSubpartitions: 1}},
		Inputs: []*weirpb.InputGateDeploymentDescriptor{
			{Channels: []*weirpb.InputChannelDeploymentDescriptor{ch("me:1"), ch("other:1"), ch("other:2")}},
			{Channels: []*weirpb.InputChannelDeploymentDescriptor{ch("me:1")}}, // local only: no buffers of its own
		},
	}
	// Outputs: 4*2+8 and 1*2+8; inputs: 2 remote * 2 + 8.
	if got, want := taskBuffers(d, "me:1", 2, 8), int64(16+10+12); got != want {
		t.Errorf("taskBuffers = %d, want %d", got, want)
	}
	// No buffers per channel: a partition still holds one per subpartition, plus one.
	if got, want := taskBuffers(d, "me:1", 0, 0), int64(5+2+0); got != want {
		t.Errorf("taskBuffers without credit = %d, want %d", got, want)
	}
}

func TestNetworkBudget(t *testing.T) {
	b := networkBudget{total: 100, mem: config.NetworkMemory{Bytes: 100 * 32768, Buffers: 100, SegmentSize: 32768}}
	if err := b.reserve("j/v0[0]#0", 60, 0); err != nil || b.used != 60 {
		t.Fatalf("reserve 60: %v, used %d", err, b.used)
	}
	err := b.reserve("j/v0[1]#0", 41, 0)
	want := "insufficient network buffers: task j/v0[1]#0 needs 41 buffers of 32768 bytes, 40 of this TaskManager's 100 are free " +
		"(network memory 3276800 bytes: taskmanager.memory.network.fraction, taskmanager.memory.network.min and taskmanager.memory.network.max " +
		"of taskmanager.memory.process.size; or lower taskmanager.network.memory.buffers-per-channel, " +
		"taskmanager.network.memory.floating-buffers-per-gate or the parallelism)"
	if err == nil || err.Error() != want || b.used != 60 {
		t.Fatalf("reserve 41: %v (used %d)\nwant %s", err, b.used, want)
	}
	// A new attempt takes over what the one it replaces holds.
	if err := b.reserve("j/v0[0]#1", 100, 60); err != nil || b.used != 100 {
		t.Fatalf("replace: %v, used %d", err, b.used)
	}
	b.release(100)
	if b.used != 0 {
		t.Fatalf("used %d after release", b.used)
	}
	// Without a process size there is no budget.
	var none networkBudget
	if err := none.reserve("x", 1<<40, 0); err != nil {
		t.Fatal(err)
	}
}

// The TaskManager derives its budget from its process size at start, and
// refuses to start on network memory settings that cannot work.
func TestNewNetworkBudget(t *testing.T) {
	base := map[string]string{"jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": "1"}
	for _, tc := range []struct {
		set     map[string]string
		total   int64
		wantErr string
	}{
		{nil, 0, ""},
		{map[string]string{"taskmanager.memory.process.size": "1728m"}, 5529, ""},
		{map[string]string{"taskmanager.memory.process.size": "1g", "taskmanager.memory.network.max": "1m"}, 0,
			"taskmanager.memory.network.min (67108864 bytes) is above taskmanager.memory.network.max (1048576 bytes)"},
	} {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range tc.set {
			m[k] = v
		}
		cfg, _, err := config.FromMap(m)
		if err != nil {
			t.Fatal(err)
		}
		tm, err := New(cfg, zap.NewNop(), Options{Registry: prometheus.NewRegistry(), NoMetricsServer: true})
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: err %v, want %s", tc.set, err, tc.wantErr)
			}
			if tm != nil {
				tm.Close()
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		tm.mu.Lock()
		total := tm.netBudget.total
		tm.mu.Unlock()
		tm.Close()
		if total != tc.total {
			t.Errorf("%v: budget %d buffers, want %d", tc.set, total, tc.total)
		}
	}
}
