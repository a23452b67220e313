package jobmanager

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/internal/etcdtest"
)

func TestReadyStandalone(t *testing.T) {
	c := startJM(t, zap.NewNop(), nil)
	if ok, status := c.jm.Ready(); !ok || status != "leader (standalone)" {
		t.Errorf("Ready() = %v %q, want true \"leader (standalone)\"", ok, status)
	}
	if err := c.jm.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, status := c.jm.Ready(); ok || status != "shutting down" {
		t.Errorf("Ready() after Close = %v %q, want false \"shutting down\"", ok, status)
	}
}

// TestReadyHA follows the readiness of two JobManagers on a real etcd: the
// leader, a standby that follows it, and the leader after its session was
// revoked (exiting).
func TestReadyHA(t *testing.T) {
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	a := startHAJM(t, etcd, dir)
	waitFor(t, "a leads", func() bool { return a.jm.leading() })
	b := startHAJM(t, etcd, dir)
	waitFor(t, "b knows the leader", func() bool { li := b.jm.leader.Load(); return li != nil && li.Address == a.addr })

	epoch := a.jm.leaderEpoch()
	if ok, status := a.jm.Ready(); !ok || status != "leader (epoch "+itoa(epoch)+")" {
		t.Errorf("leader: Ready() = %v %q", ok, status)
	}
	waitFor(t, "b campaigns", func() bool { s, _ := b.jm.haState.Load().(ha.LeadershipState); return s == ha.StateCampaigning })
	want := "standby, following the leader " + a.addr + " (epoch " + itoa(epoch) + ")"
	if ok, status := b.jm.Ready(); !ok || status != want {
		t.Errorf("standby: Ready() = %v %q, want true %q", ok, status, want)
	}

	if _, err := etcd.Client().Revoke(context.Background(), leaseOf(t, etcd, a.addr)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a exits", func() bool { return a.exited.Load() == ha.ExitCodeLeadershipLost })
	want = "leadership lost: exiting for the supervisor to restart this JobManager as a standby"
	if ok, status := a.jm.Ready(); ok || status != want {
		t.Errorf("deposed leader: Ready() = %v %q, want false %q", ok, status, want)
	}
}

// TestReadyWithoutSession: a JobManager that etcd does not give a session
// is a standby that is not ready.
func TestReadyWithoutSession(t *testing.T) {
	cfg, _, err := config.New().With(map[string]string{"jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": "0"})
	if err != nil {
		t.Fatal(err)
	}
	jm, err := Start(Options{Config: cfg, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(),
		HA: ha.NewStandalone(), Election: noSession{}, Exit: func(int) { t.Error("exit") }})
	if err != nil {
		t.Fatal(err)
	}
	defer jm.Close()
	waitFor(t, "the election started", func() bool { return jm.haState.Load() != nil })
	want := "standby without an etcd session: connecting to etcd (high-availability.etcd.endpoints)"
	if ok, status := jm.Ready(); ok || status != want {
		t.Errorf("Ready() = %v %q, want false %q", ok, status, want)
	}
}

// noSession is an etcd that never grants a session.
type noSession struct{}

func (noSession) StartSession(ctx context.Context) (<-chan struct{}, error) {
	<-ctx.Done()
	return nil, errors.New("etcd unreachable")
}
func (noSession) Campaign(context.Context) (int64, error) { return 0, errors.New("no session") }
func (noSession) StopLeading()                            {}
func (noSession) CloseSession(context.Context) error      { return nil }
func (noSession) Observe(ctx context.Context) <-chan ha.ObservedLeader {
	ch := make(chan ha.ObservedLeader)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}
func (noSession) Contenders(context.Context) ([]ha.Contender, error) { return nil, nil }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
