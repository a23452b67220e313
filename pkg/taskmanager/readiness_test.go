package taskmanager

import (
	"errors"
	"testing"
	"time"

	"github.com/weirstream/weir/proto/weirpb"
)

// TestReadiness drives the follower through a registration, a failure and
// a new leader, and checks what /readyz would say after each step.
func TestReadiness(t *testing.T) {
	now := time.Unix(1000, 0)
	type step struct {
		ev     followerEvent
		ready  bool
		status string
	}
	cases := []struct {
		name  string
		ha    bool
		steps []step
	}{
		{"standalone", false, []step{
			{startFollowing{}, false, "registering with the JobManager 10.0.0.1:6123"},
			{registrationFailed{token: 1, err: errors.New("connection refused")}, false,
				"not registered with the JobManager 10.0.0.1:6123, retrying: connection refused"},
			{leaderObserved{}, false, "not registered with the JobManager 10.0.0.1:6123, retrying: connection refused"}, // ignored: keeps the reason
			{followerTick{}, false, "registering with the JobManager 10.0.0.1:6123"},
			{registrationAccepted{token: 2, resp: &weirpb.RegisterTaskManagerResponse{JobmanagerId: "jm-a"}}, true,
				"registered with the JobManager 10.0.0.1:6123"},
			{registrationLost{token: 2, reason: "stream broke"}, false, "registering with the JobManager 10.0.0.1:6123"},
		}},
		{"high availability", true, []step{
			{startFollowing{}, false, "etcd names no JobManager leader"},
			{leaderObserved{leader: leaderInfo{address: "10.0.0.1:6123", epoch: 7}}, false, "registering with the JobManager 10.0.0.1:6123 (epoch 7)"},
			{registrationAccepted{token: 1, resp: &weirpb.RegisterTaskManagerResponse{JobmanagerId: "jm-a", LeaderEpoch: 7}}, true,
				"registered with the JobManager 10.0.0.1:6123 (epoch 7)"},
			{leaderObserved{leader: leaderInfo{address: "10.0.0.2:6123", epoch: 9}}, false, "registering with the JobManager 10.0.0.2:6123 (epoch 9)"},
			{registrationFailed{token: 2, err: errors.New("deadline exceeded")}, false,
				"not registered with the JobManager 10.0.0.2:6123 (epoch 9), retrying: deadline exceeded"},
			{leaderObserved{leader: leaderInfo{address: "10.0.0.3:6123", epoch: 11}}, false, "registering with the JobManager 10.0.0.3:6123 (epoch 11)"},
			{leaderObserved{leader: leaderInfo{epoch: 12}}, false, "etcd names no JobManager leader"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFollower(tc.ha, "10.0.0.1:6123", 10*time.Second)
			var r *readiness
			for i, s := range tc.steps {
				if s.ev == (followerTick{}) {
					now = f.deadline()
				}
				f.step(now, s.ev)
				r = nextReadiness(r, f, s.ev)
				if r.ready != s.ready || r.status != s.status {
					t.Fatalf("step %d (%T): ready %v %q, want %v %q", i, s.ev, r.ready, r.status, s.ready, s.status)
				}
			}
		})
	}
}

func TestReadyBeforeAndAfterTheLoop(t *testing.T) {
	tm := &TaskManager{}
	if ok, status := tm.Ready(); ok || status != "starting: not registering with a JobManager yet" {
		t.Errorf("Ready() = %v %q", ok, status)
	}
	f := newFollower(false, "10.0.0.1:6123", time.Second)
	f.step(time.Unix(1000, 0), startFollowing{})
	tm.publishReadiness(f, startFollowing{})
	if ok, status := tm.Ready(); ok || status != "registering with the JobManager 10.0.0.1:6123" {
		t.Errorf("Ready() = %v %q", ok, status)
	}
	tm.readiness.Store(readinessStopped) // Shutdown began
	f.step(time.Unix(1000, 0), registrationAccepted{token: 1, resp: &weirpb.RegisterTaskManagerResponse{JobmanagerId: "jm-a"}})
	tm.publishReadiness(f, registrationAccepted{token: 1})
	if ok, status := tm.Ready(); ok || status != "shutting down" {
		t.Errorf("Ready() after Shutdown began = %v %q, want false \"shutting down\"", ok, status)
	}
}
