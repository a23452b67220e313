package ha

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	self  = "jm1:6123"
	other = "jm2:6123"
)

type lstep struct {
	at    time.Duration
	ev    LeadershipEvent
	want  []LeadershipAction
	state LeadershipState // checked when not ""
}

func leader(addr string, epoch int64, since time.Duration) LeaderChanged {
	return LeaderChanged{Leader: LeaderInfo{Address: addr, Epoch: epoch, Since: at(since)}}
}

var noLeader = LeaderChanged{}

func lostExit(epoch int64, reason string) Exit {
	return Exit{Code: ExitCodeLeadershipLost, Reason: fmt.Sprintf(
		"lost the leadership at epoch %d: %s; exiting for the supervisor to restart this JobManager as a standby", epoch, reason)}
}

// leading are the steps from start to leading at epoch 10 in session 1.
func leading() []lstep {
	return []lstep{
		{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}, state: StateConnecting},
		{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}, state: StateCampaigning},
		{at: time.Second, ev: Elected{Session: 1, Epoch: 10},
			want: []LeadershipAction{StartLeading{Epoch: 10}, leader(self, 10, time.Second)}, state: StateLeading},
	}
}

func lsteps(parts ...any) []lstep {
	var out []lstep
	for _, p := range parts {
		switch p := p.(type) {
		case lstep:
			out = append(out, p)
		case []lstep:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("lsteps: %T", p))
		}
	}
	return out
}

func showL(as []LeadershipAction) string {
	if len(as) == 0 {
		return "[]"
	}
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n\t%T%+v", a, a)
	}
	return b.String()
}

func TestLeadership(t *testing.T) {
	for _, sc := range []struct {
		name  string
		steps []lstep
		epoch int64 // Epoch() at the end
	}{
		{
			name:  "start, session, campaign, lead",
			steps: leading(),
			epoch: 10,
		},
		{
			name: "a standby follows the leader it observes, never backwards",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{at: 1 * time.Second, ev: LeaderObserved{Address: other, Epoch: 5}, want: []LeadershipAction{leader(other, 5, time.Second)}},
				lstep{at: 2 * time.Second, ev: LeaderObserved{Address: other, Epoch: 5}}, // the same again
				lstep{ev: LeaderObserved{Address: "jm3:6123", Epoch: 4},
					want: []LeadershipAction{logf("leadership: observed leader jm3:6123 at epoch 4, not above revision 5 already seen: stale, ignored")}},
				lstep{at: 3 * time.Second, ev: NoLeaderObserved{Revision: 8}, want: []LeadershipAction{noLeader}},
				lstep{ev: NoLeaderObserved{Revision: 8}},
				lstep{ev: NoLeaderObserved{Revision: 7},
					want: []LeadershipAction{logf("leadership: no leader at revision 7, not above revision 8 already seen: stale, ignored")}},
				// A leader created at the revision where none existed is impossible: stale.
				lstep{ev: LeaderObserved{Address: other, Epoch: 8},
					want: []LeadershipAction{logf("leadership: observed leader %s at epoch 8, not above revision 8 already seen: stale, ignored", other)}},
				lstep{at: 4 * time.Second, ev: LeaderObserved{Address: "jm3:6123", Epoch: 9}, want: []LeadershipAction{leader("jm3:6123", 9, 4*time.Second)}},
				lstep{ev: LeaderObserved{Address: "x", Epoch: 0}, want: []LeadershipAction{logf(`leadership: observed leader "x" at invalid epoch 0: ignored`)}},
				lstep{ev: NoLeaderObserved{Revision: 12}, want: []LeadershipAction{noLeader}},
				// Nothing to forget twice.
				lstep{ev: NoLeaderObserved{Revision: 13}, state: StateCampaigning},
			),
		},
		{
			name: "elected below an epoch already observed is refused: new session, campaign again",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{ev: LeaderObserved{Address: other, Epoch: 20}, want: []LeadershipAction{leader(other, 20, 0)}},
				lstep{ev: Elected{Session: 1, Epoch: 19}, want: []LeadershipAction{
					logf("leadership: elected at epoch 19, not above the highest epoch seen (20): refused, campaigning again in a new session"),
					CloseSession{Session: 1}, CreateSession{Session: 2}}, state: StateConnecting},
				lstep{ev: SessionGranted{Session: 2}, want: []LeadershipAction{Campaign{Session: 2, Address: self}}},
				lstep{at: time.Second, ev: Elected{Session: 2, Epoch: 25},
					want: []LeadershipAction{StartLeading{Epoch: 25}, leader(self, 25, time.Second)}, state: StateLeading},
			),
			epoch: 25,
		},
		{
			name: "elected at a revision where the election was empty is refused",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{ev: NoLeaderObserved{Revision: 30}},
				lstep{ev: Elected{Session: 1, Epoch: 30}, want: []LeadershipAction{
					logf("leadership: elected at epoch 30, not above the highest epoch seen (30): refused, campaigning again in a new session"),
					CloseSession{Session: 1}, CreateSession{Session: 2}}, state: StateConnecting},
			),
		},
		{
			name: "elected at epoch 0 is refused",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{ev: Elected{Session: 1, Epoch: 0}, want: []LeadershipAction{
					logf("leadership: elected at epoch 0, not above the highest epoch seen (0): refused, campaigning again in a new session"),
					CloseSession{Session: 1}, CreateSession{Session: 2}}, state: StateConnecting},
			),
		},
		{
			name: "our own key observed before the campaign returns: elected at that epoch is accepted",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{ev: LeaderObserved{Address: self, Epoch: 40}, want: []LeadershipAction{leader(self, 40, 0)}},
				lstep{at: time.Second, ev: Elected{Session: 1, Epoch: 40}, want: []LeadershipAction{StartLeading{Epoch: 40}}, state: StateLeading},
			),
			epoch: 40,
		},
		{
			name: "leader loses its session: fenced, then exits",
			steps: lsteps(leading(),
				lstep{ev: SessionLost{Session: 1, Reason: "lease 7 expired"}, want: []LeadershipAction{
					StopLeading{Epoch: 10, Reason: "etcd session lost: lease 7 expired"}, noLeader,
					lostExit(10, "etcd session lost: lease 7 expired")}, state: StateLost},
				// Terminal: nothing brings it back.
				lstep{ev: LeaderObserved{Address: other, Epoch: 11}},
				lstep{ev: NoLeaderObserved{Revision: 12}},
				lstep{ev: SessionLost{Session: 1}},
				lstep{ev: Shutdown{}, state: StateLost},
			),
		},
		{
			name: "leader sees a newer leader (its key expired while paused): fenced, session closed, exits",
			steps: lsteps(leading(),
				lstep{ev: LeaderObserved{Address: self, Epoch: 10}}, // itself
				lstep{ev: LeaderObserved{Address: other, Epoch: 9},
					want: []LeadershipAction{logf("leadership: observed leader %s at epoch 9, not above revision 10 already seen: stale, ignored", other)}},
				lstep{at: 5 * time.Second, ev: LeaderObserved{Address: other, Epoch: 15}, want: []LeadershipAction{
					StopLeading{Epoch: 10, Reason: "JobManager jm2:6123 leads at epoch 15, above ours (10)"},
					CloseSession{Session: 1}, leader(other, 15, 5*time.Second),
					lostExit(10, "JobManager jm2:6123 leads at epoch 15, above ours (10)")}, state: StateLost},
				lstep{ev: Elected{Session: 1, Epoch: 99},
					want: []LeadershipAction{logf("leadership: elected at epoch 99 in session 1 while LOST in session 1: ignored")}, state: StateLost},
			),
		},
		{
			name: "leader sees the election empty at or after its epoch: fenced, exits",
			steps: lsteps(leading(),
				lstep{ev: NoLeaderObserved{Revision: 9},
					want: []LeadershipAction{logf("leadership: no leader at revision 9, not above revision 10 already seen: stale, ignored")}},
				lstep{ev: NoLeaderObserved{Revision: 14}, want: []LeadershipAction{
					StopLeading{Epoch: 10, Reason: "no leader in etcd at revision 14: our election key (epoch 10) is gone"},
					CloseSession{Session: 1}, noLeader,
					lostExit(10, "no leader in etcd at revision 14: our election key (epoch 10) is gone")}, state: StateLost},
			),
		},
		{
			name: "a standby that loses its session asks for a new one; late events of the old session are dropped",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{ev: SessionLost{Session: 1, Reason: "keepalive failed"}, want: []LeadershipAction{
					logf("leadership: etcd session 1 lost while standing by (keepalive failed): creating a new one"),
					CreateSession{Session: 2}}, state: StateConnecting},
				// The campaign of session 1 returns late: not ours.
				lstep{ev: Elected{Session: 1, Epoch: 50},
					want: []LeadershipAction{logf("leadership: elected at epoch 50 in session 1 while CONNECTING in session 2: ignored")}},
				lstep{ev: SessionLost{Session: 1, Reason: "again"},
					want: []LeadershipAction{logf("leadership: session 1 lost (again), but session 2 is current: ignored")}},
				// Session 2 lost before being granted: no such thing; ignored.
				lstep{ev: SessionLost{Session: 2, Reason: "x"},
					want: []LeadershipAction{logf("leadership: session 2 lost (x), but session 2 is current: ignored")}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{CloseSession{Session: 1},
					logf("leadership: session 1 granted, but session 2 is current: closed")}},
				lstep{ev: SessionGranted{Session: 2}, want: []LeadershipAction{Campaign{Session: 2, Address: self}}, state: StateCampaigning},
				lstep{ev: SessionGranted{Session: 2}, want: []LeadershipAction{logf("leadership: session 2 granted twice")}},
				lstep{at: time.Second, ev: Elected{Session: 2, Epoch: 60},
					want: []LeadershipAction{StartLeading{Epoch: 60}, leader(self, 60, time.Second)}, state: StateLeading},
				lstep{ev: Elected{Session: 2, Epoch: 61},
					want: []LeadershipAction{logf("leadership: elected at epoch 61 in session 2 while LEADING in session 2: ignored")}},
			),
			epoch: 60,
		},
		{
			name: "shutdown of the leader: fenced, session closed (a standby takes over now), no exit",
			steps: lsteps(leading(),
				lstep{ev: Shutdown{}, want: []LeadershipAction{StopLeading{Epoch: 10, Reason: "shutdown"}, CloseSession{Session: 1}, noLeader},
					state: StateStopped},
				lstep{ev: Shutdown{}},
				lstep{ev: SessionLost{Session: 1, Reason: "revoked"}},
			),
		},
		{
			name: "shutdown while campaigning closes the session",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{Campaign{Session: 1, Address: self}}},
				lstep{ev: Shutdown{}, want: []LeadershipAction{CloseSession{Session: 1}}, state: StateStopped},
				lstep{ev: Elected{Session: 1, Epoch: 3},
					want: []LeadershipAction{logf("leadership: elected at epoch 3 in session 1 while STOPPED in session 1: ignored")}, state: StateStopped},
			),
		},
		{
			name: "shutdown while connecting: the session granted later is closed",
			steps: lsteps(
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
				lstep{ev: Shutdown{}, state: StateStopped},
				lstep{ev: SessionGranted{Session: 1}, want: []LeadershipAction{CloseSession{Session: 1}}, state: StateStopped},
			),
		},
		{
			name: "shutdown before start; start twice",
			steps: lsteps(
				lstep{ev: Shutdown{}, state: StateStopped},
				lstep{ev: Start{}},
				lstep{ev: Start{}, want: []LeadershipAction{logf("leadership: already started")}},
			),
		},
		{
			name: "events before start are stale",
			steps: lsteps(
				lstep{ev: SessionGranted{Session: 0}, want: []LeadershipAction{CloseSession{Session: 0},
					logf("leadership: session 0 granted, but session 0 is current: closed")}},
				lstep{ev: Elected{Session: 0, Epoch: 1},
					want: []LeadershipAction{logf("leadership: elected at epoch 1 in session 0 while CONNECTING in session 0: ignored")}},
				lstep{ev: Start{}, want: []LeadershipAction{CreateSession{Session: 1}}},
			),
		},
	} {
		t.Run(sc.name, func(t *testing.T) {
			l := NewLeadership(self)
			for i, st := range sc.steps {
				got := l.Step(at(st.at), st.ev)
				if !reflect.DeepEqual(got, st.want) {
					t.Fatalf("step %d (%T%+v):\n got: %s\nwant: %s", i, st.ev, st.ev, showL(got), showL(st.want))
				}
				if st.state != "" && l.State() != st.state {
					t.Fatalf("after step %d (%T): state %s, want %s", i, st.ev, l.State(), st.state)
				}
			}
			if got := l.Epoch(); got != sc.epoch {
				t.Errorf("Epoch() = %d, want %d", got, sc.epoch)
			}
		})
	}
}

func TestLeadershipLeaderInfo(t *testing.T) {
	l := NewLeadership(self)
	for _, ev := range []LeadershipEvent{Start{}, SessionGranted{Session: 1}, LeaderObserved{Address: other, Epoch: 3}} {
		l.Step(at(2*time.Second), ev)
	}
	if got, want := l.Leader(), (LeaderInfo{Address: other, Epoch: 3, Since: at(2 * time.Second)}); got != want {
		t.Fatalf("Leader() = %+v, want %+v", got, want)
	}
	l.Step(at(5*time.Second), Elected{Session: 1, Epoch: 7})
	if got, want := l.Leader(), (LeaderInfo{Address: self, Epoch: 7, Since: at(5 * time.Second)}); got != want {
		t.Fatalf("Leader() = %+v, want %+v", got, want)
	}
}

// TestLeadershipEpochsNeverGoBackwards feeds every interleaving of a
// small set of observations and elections and checks that StartLeading
// never names an epoch below one observed before it, and that a leader
// never starts twice.
func TestLeadershipEpochsNeverGoBackwards(t *testing.T) {
	evs := []LeadershipEvent{
		LeaderObserved{Address: other, Epoch: 5},
		NoLeaderObserved{Revision: 6},
		Elected{Session: 1, Epoch: 4},
		Elected{Session: 1, Epoch: 7},
		LeaderObserved{Address: other, Epoch: 8},
		SessionLost{Session: 1},
	}
	var perm func(prefix []int, rest []int)
	n := 0
	perm = func(prefix, rest []int) {
		if len(rest) == 0 {
			n++
			l := NewLeadership(self)
			l.Step(t0, Start{})
			l.Step(t0, SessionGranted{Session: 1})
			var seen int64
			started := 0
			for _, i := range prefix {
				ev := evs[i]
				for _, a := range l.Step(t0, ev) {
					if s, ok := a.(StartLeading); ok {
						started++
						if s.Epoch < seen {
							t.Fatalf("order %v: StartLeading at %d after observing %d", prefix, s.Epoch, seen)
						}
					}
				}
				switch ev := ev.(type) {
				case LeaderObserved:
					seen = max(seen, ev.Epoch)
				case NoLeaderObserved:
					seen = max(seen, ev.Revision+1)
				}
			}
			if started > 1 {
				t.Fatalf("order %v: StartLeading %d times", prefix, started)
			}
			return
		}
		for k := range rest {
			next := append(append([]int(nil), rest[:k]...), rest[k+1:]...)
			perm(append(append([]int(nil), prefix...), rest[k]), next)
		}
	}
	perm(nil, []int{0, 1, 2, 3, 4, 5})
	if n != 720 {
		t.Fatalf("ran %d orders, want 720", n)
	}
}
