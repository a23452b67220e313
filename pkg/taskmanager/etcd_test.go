package taskmanager

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/internal/etcdtest"
	"github.com/weirstream/weir/proto/weirpb"
)

func newEtcdStore(t *testing.T, srv *etcdtest.Server, address string) *ha.Etcd {
	t.Helper()
	cfg := ha.EtcdConfig{Endpoints: srv.Endpoints(), ClusterID: "tm-test", LeaseTTL: 5 * time.Second, Address: address, Logger: zap.NewNop()}
	if address != "" {
		cfg.StorageDir = t.TempDir()
	}
	s, err := ha.NewEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// With a real etcd: the TaskManager finds the leader through the election
// (no jobmanager.rpc.address), and when the leader resigns and a standby
// wins, it registers with the standby, reporting its running task, which
// keeps running, and fences at the standby's epoch.
func TestEtcdLeaderDiscoveryFollowsElection(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	jmA := startJM(t, "127.0.0.1:0", "jm-a")
	jmB := startJM(t, "127.0.0.1:0", "jm-b")
	storeA := newEtcdStore(t, srv, jmA.addr)
	storeB := newEtcdStore(t, srv, jmB.addr)
	observer := newEtcdStore(t, srv, "")

	if _, err := storeA.StartSession(ctx); err != nil {
		t.Fatal(err)
	}
	epochA, err := storeA.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jmA.epoch.Store(epochA)
	// B stands by: its campaign returns when A resigns.
	if _, err := storeB.StartSession(ctx); err != nil {
		t.Fatal(err)
	}
	elected := make(chan int64, 1)
	go func() {
		e, err := storeB.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		jmB.epoch.Store(e)
		elected <- e
	}()

	reg := prometheus.NewRegistry()
	tm := startHATM(t, observer, reg, zap.NewNop())
	eventually(t, "registration with A", func() bool { return jmA.numRegistrations() == 1 })
	eventually(t, "fence at A's epoch", func() bool { return tm.LeaderEpoch() == epochA })
	a := epochClient(t, tm, epochA)
	if _, err := a.SubmitTask(ctx, subtask(t, "j", 0, map[string]any{"name": "etcd-v0"}, -1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING at A", func() bool { return len(jmA.statesOfTask("j/v0[0]#0")) == 1 })

	if err := storeA.CloseSession(ctx); err != nil {
		t.Fatal(err)
	}
	epochB := <-elected
	if epochB <= epochA {
		t.Fatalf("B's epoch %d is not above A's %d", epochB, epochA)
	}
	eventually(t, "registration with B", func() bool { return jmB.numRegistrations() >= 1 })
	eq(t, "report to B", showReport(jmB.registration(0)), "j/v0[0]#0 RUNNING")
	eventually(t, "fence at B's epoch", func() bool { return tm.LeaderEpoch() == epochB })
	activeMu.Lock()
	running := active["etcd-v0"]
	activeMu.Unlock()
	eq(t, "v0 instances open", running, 1)
	eq(t, "registrations with A", jmA.numRegistrations(), 1)
	eq(t, "leader changes", counter(t, reg, "weir_taskmanager_leader_changes_total"), 2.0)
	if _, err := a.CancelTask(ctx, &weirpb.CancelTaskRequest{Execution: &weirpb.ExecutionAttemptID{JobId: "j"}}); err == nil {
		t.Fatal("A canceled a task after B led")
	}
	eq(t, "states of v0 at A", jmA.statesOfTask("j/v0[0]#0"), []string{"RUNNING"})
}
