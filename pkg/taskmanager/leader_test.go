package taskmanager

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/proto/weirpb"
)

// showAction renders one follower action for the scripts below.
func showAction(a followerAction) string {
	switch a := a.(type) {
	case register:
		s := fmt.Sprintf("register #%d %s", a.token, a.target)
		if a.report {
			s += " with report"
		}
		return s
	case endSession:
		return fmt.Sprintf("end #%d", a.token)
	case raiseFence:
		return fmt.Sprintf("fence %d", a.epoch)
	case leaderChanged:
		return "leader " + a.leader.String()
	case registered:
		who := "same JobManager"
		if a.newLeader {
			who = "new JobManager"
		}
		return fmt.Sprintf("registered #%d %s %q, %s", a.token, a.target, a.resp.GetJobmanagerId(), who)
	case startHeartbeat:
		return fmt.Sprintf("heartbeat #%d", a.token)
	case cancelTasks:
		if a.held {
			return fmt.Sprintf("cancel held of #%d: %s (%s)", a.token, a.msg, a.reason)
		}
		return fmt.Sprintf("cancel all: %s (%s)", a.msg, a.reason)
	case followerLog:
		return "log: " + a.msg
	}
	return fmt.Sprintf("unknown %T", a)
}

// step is one line of a follower script: at (ms after the start), ev,
// and the actions wanted, then the deadline wanted ("-": none).
type followerStep struct {
	at       int
	ev       followerEvent
	want     []string
	deadline string
}

func accepted(token uint64, id string, epoch int64) registrationAccepted {
	return registrationAccepted{token: token, resp: &weirpb.RegisterTaskManagerResponse{
		JobmanagerId: id, HeartbeatIntervalMs: 100, HeartbeatTimeoutMs: 2000, LeaderEpoch: epoch}}
}

func observed(addr string, epoch int64) leaderObserved {
	return leaderObserved{leader: leaderInfo{address: addr, epoch: epoch}}
}

func runFollower(t *testing.T, f *follower, steps []followerStep) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, st := range steps {
		now := t0.Add(time.Duration(st.at) * time.Millisecond)
		var got []string
		for _, a := range f.step(now, st.ev) {
			got = append(got, showAction(a))
		}
		if g, w := strings.Join(got, "\n"), strings.Join(st.want, "\n"); g != w {
			t.Fatalf("step %d (%T at %d ms):\ngot:\n%s\nwant:\n%s", i, st.ev, st.at, g, w)
		}
		d := "-"
		if dl := f.deadline(); !dl.IsZero() {
			d = fmt.Sprintf("%d ms", dl.Sub(t0).Milliseconds())
		}
		if st.deadline != "" && d != st.deadline {
			t.Fatalf("step %d (%T): deadline %s, want %s", i, st.ev, d, st.deadline)
		}
	}
}

const (
	hbTimeout2s  = "no JobManager leader for longer than the last leader's heartbeat.timeout: canceling the tasks, which no leader controls"
	sameJMCancel = "registered again with the same JobManager, which failed the tasks it had placed here: canceling them"
)

func TestFollowerStandalone(t *testing.T) {
	f := newFollower(false, "jm:6123", 2*time.Second)
	runFollower(t, f, []followerStep{
		{0, startFollowing{}, []string{"register #1 jm:6123"}, "-"},
		{10, registrationFailed{token: 1, err: errors.New("refused")}, []string{"log: cannot reach the JobManager at jm:6123: retrying in 500ms"}, "510 ms"},
		{200, followerTick{}, nil, "510 ms"},
		{510, followerTick{}, []string{"register #2 jm:6123"}, "-"},
		{520, registrationFailed{token: 2, err: errors.New("refused")}, []string{"log: cannot reach the JobManager at jm:6123: retrying in 1s"}, "1520 ms"},
		{1520, followerTick{}, []string{"register #3 jm:6123"}, "-"},
		// etcd is not consulted in standalone mode.
		{1521, observed("other:1", 9), nil, "-"},
		{1530, accepted(3, "jm-1", 0), []string{`registered #3 jm:6123 "jm-1", new JobManager`, "heartbeat #3"}, "-"},
		{1540, registrationFailed{token: 3, err: errors.New("late")}, nil, "-"},
		// A lost registration cancels everything first, then registers
		// again at once, reporting nothing.
		{5000, registrationLost{token: 3, reason: "heartbeat stream: EOF"}, []string{
			"cancel all: lost the registration with the JobManager: registering again (heartbeat stream: EOF)",
			"register #4 jm:6123"}, "-"},
		{5010, accepted(4, "jm-1", 0), []string{`registered #4 jm:6123 "jm-1", same JobManager`, "heartbeat #4"}, "-"},
		{6000, registrationLost{token: 4, reason: "the JobManager does not know this TaskManager"}, []string{
			"cancel all: lost the registration with the JobManager: registering again (the JobManager does not know this TaskManager)",
			"register #5 jm:6123"}, "-"},
		// A restarted JobManager: its tasks were canceled at the loss.
		{6010, accepted(5, "jm-2", 0), []string{`registered #5 jm:6123 "jm-2", new JobManager`, "heartbeat #5"}, "-"},
		// Long without the JobManager: nothing more is canceled.
		{60000, followerTick{}, nil, "-"},
	})
}

func TestFollowerHAFollowsLeader(t *testing.T) {
	f := newFollower(true, "", 4*time.Second)
	runFollower(t, f, []followerStep{
		{0, startFollowing{}, nil, "-"},
		{5, observed("", 0), nil, "-"},
		{10, observed("a:1", 5), []string{"leader a:1 (epoch 5)", "fence 5", "register #1 a:1 (epoch 5) with report"}, "-"},
		{20, accepted(1, "jm-a", 5), []string{"fence 5", `registered #1 a:1 (epoch 5) "jm-a", new JobManager`, "heartbeat #1"}, "-"},
		{30, observed("a:1", 5), nil, "-"},
		// A new leader while the old one still answers: end that
		// registration, keep the tasks, register with the new one.
		{1000, observed("b:1", 8), []string{"leader b:1 (epoch 8)", "fence 8", "end #1",
			"log: ending the registration with a:1 (epoch 5) for the new JobManager leader b:1 (epoch 8); the tasks keep running",
			"register #2 b:1 (epoch 8) with report"}, "3000 ms"},
		// The old registration's heartbeat ends: stale.
		{1001, registrationLost{token: 1, reason: "context canceled"}, nil, "3000 ms"},
		{1010, accepted(2, "jm-b", 8), []string{"fence 8", `registered #2 b:1 (epoch 8) "jm-b", new JobManager`, "heartbeat #2"}, "-"},
		// An older leader named again (cannot happen in etcd) is ignored.
		{1100, observed("a:1", 5), []string{"log: etcd names the JobManager leader a:1 (epoch 5), below epoch 8 already seen: ignored"}, "-"},
		// The leader dies: its heartbeat ends before etcd's lease expires.
		{2000, registrationLost{token: 2, reason: "heartbeat stream: EOF"}, []string{
			"log: lost the registration with the JobManager leader b:1 (epoch 8): keeping the tasks, registering with the leader etcd names (b:1 (epoch 8))",
			"register #3 b:1 (epoch 8) with report"}, "4000 ms"},
		{2010, registrationFailed{token: 3, err: errors.New("refused")}, []string{"log: cannot reach the JobManager at b:1 (epoch 8): retrying in 500ms"}, "2510 ms"},
		{2510, followerTick{}, []string{"register #4 b:1 (epoch 8) with report"}, "4000 ms"},
		{2520, registrationFailed{token: 4, err: errors.New("refused")}, []string{"log: cannot reach the JobManager at b:1 (epoch 8): retrying in 1s"}, "3520 ms"},
		// The lease expired, etcd names nobody: wait.
		{3000, observed("", 0), []string{"leader no leader"}, "4000 ms"},
		// A standby takes over: registered at once, the tasks kept.
		{3600, observed("c:1", 12), []string{"leader c:1 (epoch 12)", "fence 12", "register #5 c:1 (epoch 12) with report"}, "4000 ms"},
		{3610, accepted(5, "jm-c", 12), []string{"fence 12", `registered #5 c:1 (epoch 12) "jm-c", new JobManager`, "heartbeat #5"}, "-"},
		{9000, followerTick{}, nil, "-"},
	})
}

func TestFollowerHASameJobManagerCancelsHeld(t *testing.T) {
	f := newFollower(true, "", 4*time.Second)
	runFollower(t, f, []followerStep{
		{0, startFollowing{}, nil, "-"},
		{0, observed("a:1", 5), []string{"leader a:1 (epoch 5)", "fence 5", "register #1 a:1 (epoch 5) with report"}, "-"},
		{10, accepted(1, "jm-a", 5), []string{"fence 5", `registered #1 a:1 (epoch 5) "jm-a", new JobManager`, "heartbeat #1"}, "-"},
		{500, registrationLost{token: 1, reason: "the JobManager does not know this TaskManager"}, []string{
			"log: lost the registration with the JobManager leader a:1 (epoch 5): keeping the tasks, registering with the leader etcd names (a:1 (epoch 5))",
			"register #2 a:1 (epoch 5) with report"}, "2500 ms"},
		// The answer says it is the same JobManager: the tasks held when
		// the request was sent were failed by it.
		{510, accepted(2, "jm-a", 5), []string{"fence 5",
			"cancel held of #2: " + sameJMCancel + ` (jobmanager_id "jm-a" unchanged)`,
			`registered #2 a:1 (epoch 5) "jm-a", same JobManager`, "heartbeat #2"}, "-"},
		// The process at the leader's address restarted and leads anew
		// before etcd's news arrives: another id, the tasks are kept.
		{900, registrationLost{token: 2, reason: "heartbeat stream: EOF"}, []string{
			"log: lost the registration with the JobManager leader a:1 (epoch 5): keeping the tasks, registering with the leader etcd names (a:1 (epoch 5))",
			"register #3 a:1 (epoch 5) with report"}, "2900 ms"},
		{950, accepted(3, "jm-a2", 9), []string{"fence 9", `registered #3 a:1 (epoch 9) "jm-a2", new JobManager`, "heartbeat #3"}, "-"},
		{960, observed("a:1", 9), []string{"leader a:1 (epoch 9)", "fence 9"}, "-"},
	})
}

func TestFollowerHALeaderlessCancelsOnce(t *testing.T) {
	f := newFollower(true, "", 10*time.Second)
	runFollower(t, f, []followerStep{
		{0, startFollowing{}, nil, "-"},
		{0, observed("a:1", 5), []string{"leader a:1 (epoch 5)", "fence 5", "register #1 a:1 (epoch 5) with report"}, "-"},
		{10, accepted(1, "jm-a", 5), []string{"fence 5", `registered #1 a:1 (epoch 5) "jm-a", new JobManager`, "heartbeat #1"}, "-"},
		{1000, registrationLost{token: 1, reason: "heartbeat stream: EOF"}, []string{
			"log: lost the registration with the JobManager leader a:1 (epoch 5): keeping the tasks, registering with the leader etcd names (a:1 (epoch 5))",
			"register #2 a:1 (epoch 5) with report"}, "3000 ms"},
		{1010, registrationFailed{token: 2, err: errors.New("refused")}, []string{"log: cannot reach the JobManager at a:1 (epoch 5): retrying in 500ms"}, "1510 ms"},
		{1510, followerTick{}, []string{"register #3 a:1 (epoch 5) with report"}, "3000 ms"},
		{2999, followerTick{}, nil, "3000 ms"},
		// heartbeat.timeout (2 s, from the registration) without a leader.
		{3000, followerTick{}, []string{"cancel all: " + hbTimeout2s + " (no registration with a leader for 2s (heartbeat.timeout 2s); etcd names a:1 (epoch 5))"}, "-"},
		{3100, registrationFailed{token: 3, err: errors.New("refused")}, []string{"log: cannot reach the JobManager at a:1 (epoch 5): retrying in 1s"}, "4100 ms"},
		{4100, followerTick{}, []string{"register #4 a:1 (epoch 5) with report"}, "-"},
		{9000, followerTick{}, nil, "-"},
		// A stale leader answers (it lost its key, etcd names a newer
		// one): not a registration.
		{9100, observed("b:1", 8), []string{"leader b:1 (epoch 8)", "fence 8", "end #4", "register #5 b:1 (epoch 8) with report"}, "-"},
		{9150, accepted(4, "jm-a", 5), nil, "-"},
		{9200, accepted(5, "jm-a", 5), []string{
			`log: the JobManager at b:1 (id "jm-a") answered the registration as leader at epoch 5, below epoch 8 already seen: it is no longer the leader; retrying in 500ms`}, "9700 ms"},
		{9700, followerTick{}, []string{"register #6 b:1 (epoch 8) with report"}, "-"},
		{9710, accepted(6, "jm-b", 8), []string{"fence 8", `registered #6 b:1 (epoch 8) "jm-b", new JobManager`, "heartbeat #6"}, "-"},
		// A new leaderless period gets its own bound.
		{20000, registrationLost{token: 6, reason: "no heartbeat answer for 2s"}, []string{
			"log: lost the registration with the JobManager leader b:1 (epoch 8): keeping the tasks, registering with the leader etcd names (b:1 (epoch 8))",
			"register #7 b:1 (epoch 8) with report"}, "22000 ms"},
		{22000, followerTick{}, []string{"cancel all: " + hbTimeout2s + " (no registration with a leader for 2s (heartbeat.timeout 2s); etcd names b:1 (epoch 8))"}, "-"},
	})
}
