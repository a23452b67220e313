package taskmanager

import (
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/proto/weirpb"
)

// follower is the pure core of a TaskManager's connection to the
// JobManager leader: which JobManager to register with, when, and what
// becomes of the tasks when the registration is lost. Like the checkpoint
// coordinator it does no I/O, starts no goroutine and reads no clock: the
// shell (registration.go) feeds it what etcd, the registration calls and
// the heartbeat stream say, and carries out what it returns, in order.
//
//	f := newFollower(ha, standaloneAddress, maxBackoff)
//	do(f.step(now, startFollowing{}))
//	for { // a timer at f.deadline() feeds followerTick
//		do(f.step(time.Now(), <-events))
//	}
//
// # Standalone (high-availability.type: none)
//
// The JobManager is jobmanager.rpc.address. A lost registration (the
// heartbeat stream broke, the JobManager does not know this TaskManager
// or its id changed) cancels every task at once, because registering
// again makes the JobManager fail them all, and then registers again,
// reporting nothing. This is the behaviour weir always had.
//
// # High availability (high-availability.type: etcd)
//
// The leader is whom etcd names (leaderObserved). A lost registration
// cancels nothing: the TaskManager registers with the leader etcd names,
// reporting every task it holds, and the answer tells what happened:
//
//   - the same jobmanager_id as before: the same JobManager (it forgot
//     this TaskManager, or the network blipped), which failed the tasks
//     it had placed here when it accepted the registration; the tasks
//     held when the request was sent are canceled then (cancelTasks
//     held). Canceling before the request, as in standalone mode, would
//     cancel everything whenever the process at the leader's address
//     answers while etcd still names an old epoch (a leader killed and
//     restarted by its supervisor within the lease TTL);
//   - another jobmanager_id: a new leader, which adopts or cancels what
//     was reported (package ha, Recovery). The tasks keep running.
//
// A new leader observed while registered with an older one ends that
// registration the same way (no task is canceled). Without a
// registration for longer than the heartbeat timeout of the last leader
// (the JobManager's heartbeat.timeout, also the new leader's reporting
// window), every task is canceled once, so that a cluster without a
// leader does not run tasks nobody controls; their final states are
// reported to the next leader.
//
// # Invariants
//
//   - Epochs seen never go down (raiseFence, every epoch > 0 from etcd or
//     from a registration answer). An answer whose leader_epoch is below
//     one already seen comes from a deposed leader: it is not a
//     registration, and the TaskManager tries again.
//   - One registration (or attempt) at a time, named by a token; an event
//     of another token is stale and changes nothing.
//   - Tasks are canceled only by: a lost registration in standalone mode,
//     a same-JobManager re-registration (the tasks held before it), the
//     leaderless bound. Never by a change of leader.
//   - step is deterministic.
type follower struct {
	ha         bool
	maxBackoff time.Duration

	// leader is whom to register with: in HA mode whom etcd names last
	// (address "" when none), in standalone mode jobmanager.rpc.address.
	leader leaderInfo
	phase  followerPhase
	token  uint64     // of the current attempt or registration
	target leaderInfo // whom the current attempt or registration is with
	jmID   string     // jobmanager_id of the last accepted registration
	// hbTimeout: the last leader's heartbeat timeout, the bound of a
	// leaderless period (HA).
	hbTimeout time.Duration
	lostAt    time.Time // HA: start of the leaderless period, zero while registered
	abandoned bool      // the tasks were canceled in this leaderless period
	backoff   time.Duration
	retryAt   time.Time // phaseIdle: when to try again (zero: wait for a leader)
	highest   int64     // highest epoch seen
}

// leaderInfo is a JobManager to register with.
type leaderInfo struct {
	address string // host:port, "" when no leader is known
	epoch   int64  // etcd's epoch of the leader, 0 in standalone mode
}

func (l leaderInfo) String() string {
	if l.address == "" {
		return "no leader"
	}
	if l.epoch == 0 {
		return l.address
	}
	return fmt.Sprintf("%s (epoch %d)", l.address, l.epoch)
}

type followerPhase int

const (
	phaseIdle        followerPhase = iota // not registered, not trying right now
	phaseRegistering                      // a RegisterTaskManager call is out
	phaseRegistered                       // heartbeating
)

func newFollower(ha bool, standalone string, maxBackoff time.Duration) *follower {
	f := &follower{ha: ha, maxBackoff: maxBackoff}
	if !ha {
		f.leader = leaderInfo{address: standalone}
	}
	f.backoff = f.initialBackoff()
	return f
}

func (f *follower) initialBackoff() time.Duration {
	return min(initialRegistrationBackoff, f.maxBackoff)
}

// followerEvent is an input of follower.step.
type followerEvent interface{ isFollowerEvent() }

// startFollowing begins: the first registration (standalone), or the
// wait for etcd to name a leader (HA).
type startFollowing struct{}

// leaderObserved: etcd names this leader (address "" when none).
type leaderObserved struct{ leader leaderInfo }

// registrationAccepted: the registration with token was answered.
type registrationAccepted struct {
	token uint64
	resp  *weirpb.RegisterTaskManagerResponse
}

// registrationFailed: the registration with token failed.
type registrationFailed struct {
	token uint64
	err   error
}

// registrationLost: the heartbeat of the registration with token ended.
type registrationLost struct {
	token  uint64
	reason string
}

// followerTick: the time of deadline() has come.
type followerTick struct{}

func (startFollowing) isFollowerEvent()       {}
func (leaderObserved) isFollowerEvent()       {}
func (registrationAccepted) isFollowerEvent() {}
func (registrationFailed) isFollowerEvent()   {}
func (registrationLost) isFollowerEvent()     {}
func (followerTick) isFollowerEvent()         {}

// followerAction is an output of follower.step.
type followerAction interface{ isFollowerAction() }

// register: call RegisterTaskManager on target and answer
// registrationAccepted or registrationFailed with token. report: list
// every task held (HA); the shell remembers which tasks those were, for
// cancelTasks{held: true}.
type register struct {
	token  uint64
	target leaderInfo
	report bool
}

// endSession: abandon the registration attempt or heartbeat of token; its
// events, if any still come, are stale.
type endSession struct{ token uint64 }

// raiseFence: reject calls of any JobManager below epoch from now on.
type raiseFence struct{ epoch int64 }

// leaderChanged: etcd names another leader (log it once; count it).
type leaderChanged struct{ leader leaderInfo }

// registered: the registration with token stands. newLeader: another
// JobManager than the last registration's (HA: the tasks reported are
// now that leader's to adopt; answers of the previous leader's
// checkpoints are dropped). The shell publishes target as the JobManager
// that state reports and checkpoint answers go to.
type registered struct {
	token     uint64
	target    leaderInfo
	resp      *weirpb.RegisterTaskManagerResponse
	newLeader bool
}

// startHeartbeat: run the heartbeat stream of the registration with token
// and answer registrationLost when it ends.
type startHeartbeat struct {
	token uint64
	resp  *weirpb.RegisterTaskManagerResponse
}

// cancelTasks cancels tasks, and logs msg with reason and their number.
// held: the tasks held when the registration with token was sent, and
// forget the ended attempts (the JobManager failed them all); otherwise
// every task deployed now (the ended attempts stay, to be reported).
type cancelTasks struct {
	token  uint64
	held   bool
	msg    string
	reason string
}

// followerLog is worth a log line and needs no other action.
type followerLog struct {
	level  zapcore.Level
	msg    string
	fields []zap.Field
}

func (register) isFollowerAction()       {}
func (endSession) isFollowerAction()     {}
func (raiseFence) isFollowerAction()     {}
func (leaderChanged) isFollowerAction()  {}
func (registered) isFollowerAction()     {}
func (startHeartbeat) isFollowerAction() {}
func (cancelTasks) isFollowerAction()    {}
func (followerLog) isFollowerAction()    {}

// deadline returns when step wants a followerTick (zero: no timer).
func (f *follower) deadline() time.Time {
	var d time.Time
	if f.phase == phaseIdle && !f.retryAt.IsZero() {
		d = f.retryAt
	}
	if f.ha && !f.lostAt.IsZero() && !f.abandoned {
		if end := f.lostAt.Add(f.hbTimeout); d.IsZero() || end.Before(d) {
			d = end
		}
	}
	return d
}

// step applies one event and returns what the caller must do now, in order.
func (f *follower) step(now time.Time, ev followerEvent) []followerAction {
	switch ev := ev.(type) {
	case startFollowing:
		return f.tryRegister(nil)

	case leaderObserved:
		return f.observe(now, ev.leader)

	case registrationAccepted:
		if ev.token != f.token || f.phase != phaseRegistering {
			return nil // an attempt abandoned by endSession
		}
		return f.accept(now, ev.resp)

	case registrationFailed:
		if ev.token != f.token || f.phase != phaseRegistering {
			return nil
		}
		f.phase, f.retryAt = phaseIdle, now.Add(f.backoff)
		acts := []followerAction{followerLog{level: zapcore.WarnLevel,
			msg:    fmt.Sprintf("cannot reach the JobManager at %s: retrying in %s", f.target, f.backoff),
			fields: []zap.Field{zap.Error(ev.err)}}}
		f.backoff = nextBackoff(f.backoff, f.maxBackoff)
		return acts

	case registrationLost:
		if ev.token != f.token || f.phase != phaseRegistered {
			return nil
		}
		f.phase = phaseIdle
		if !f.ha {
			// Registering again makes the JobManager fail every task it
			// had placed here, so they are canceled now, before the new
			// registration: a task the JobManager submits once it has
			// accepted the new registration must survive, and it may
			// arrive before the RegisterTaskManager answer does.
			acts := []followerAction{cancelTasks{msg: "lost the registration with the JobManager: registering again", reason: ev.reason}}
			return f.tryRegister(acts)
		}
		f.startLeaderless(now)
		acts := []followerAction{followerLog{level: zapcore.WarnLevel,
			msg: fmt.Sprintf("lost the registration with the JobManager leader %s: keeping the tasks, registering with the leader etcd names (%s)",
				f.target, f.leader),
			fields: []zap.Field{zap.String("reason", ev.reason)}}}
		return f.tryRegister(acts)

	case followerTick:
		var acts []followerAction
		if f.ha && !f.lostAt.IsZero() && !f.abandoned && now.Sub(f.lostAt) >= f.hbTimeout {
			f.abandoned = true
			acts = append(acts, cancelTasks{
				msg: "no JobManager leader for longer than the last leader's " + config.HeartbeatTimeout.Key + ": canceling the tasks, which no leader controls",
				reason: fmt.Sprintf("no registration with a leader for %s (%s %s); etcd names %s",
					now.Sub(f.lostAt).Round(time.Millisecond), config.HeartbeatTimeout.Key, f.hbTimeout, f.leader)})
		}
		if f.phase == phaseIdle && !f.retryAt.IsZero() && !now.Before(f.retryAt) {
			acts = f.tryRegister(acts)
		}
		return acts
	}
	return []followerAction{followerLog{level: zapcore.ErrorLevel, msg: fmt.Sprintf("follower: unknown event %T", ev)}}
}

// observe handles etcd's answer to who leads.
func (f *follower) observe(now time.Time, l leaderInfo) []followerAction {
	if !f.ha {
		return nil
	}
	if l == f.leader {
		return nil
	}
	if l.address != "" && l.epoch < f.highest {
		return []followerAction{followerLog{level: zapcore.WarnLevel,
			msg: fmt.Sprintf("etcd names the JobManager leader %s, below epoch %d already seen: ignored", l, f.highest)}}
	}
	f.leader = l
	acts := []followerAction{leaderChanged{leader: l}}
	if l.epoch > 0 {
		// etcd's word is final: a JobManager below this epoch is deposed,
		// whether or not its successor has called yet.
		f.highest = max(f.highest, l.epoch)
		acts = append(acts, raiseFence{epoch: l.epoch})
	}
	switch f.phase {
	case phaseRegistered:
		if l.address == "" || l == f.target {
			// The leader lost its key and stops acting; its heartbeat ends
			// when it exits. Until then it is the registration there is.
			return acts
		}
		acts = append(acts, endSession{token: f.token}, followerLog{level: zapcore.InfoLevel,
			msg: fmt.Sprintf("ending the registration with %s for the new JobManager leader %s; the tasks keep running", f.target, l)})
		f.phase = phaseIdle
		f.startLeaderless(now)
	case phaseRegistering:
		if l == f.target {
			return acts
		}
		acts = append(acts, endSession{token: f.token})
		f.phase = phaseIdle
	}
	// A new leader is tried at once, whatever the backoff had grown to.
	f.backoff = f.initialBackoff()
	return f.tryRegister(acts)
}

// accept handles the answer to the current registration.
func (f *follower) accept(now time.Time, resp *weirpb.RegisterTaskManagerResponse) []followerAction {
	epoch := resp.GetLeaderEpoch()
	if epoch > 0 && epoch < f.highest {
		f.phase, f.retryAt = phaseIdle, now.Add(f.backoff)
		acts := []followerAction{followerLog{level: zapcore.WarnLevel, msg: fmt.Sprintf(
			"the JobManager at %s (id %q) answered the registration as leader at epoch %d, below epoch %d already seen: it is no longer the leader; retrying in %s",
			f.target.address, resp.GetJobmanagerId(), epoch, f.highest, f.backoff)}}
		f.backoff = nextBackoff(f.backoff, f.maxBackoff)
		return acts
	}
	var acts []followerAction
	if epoch > 0 {
		f.highest = max(f.highest, epoch)
		acts = append(acts, raiseFence{epoch: epoch})
		// The answer knows better than etcd's news, which may lag: the
		// process at the address may lead at a newer epoch already.
		f.target.epoch = epoch
	}
	same := f.jmID != "" && resp.GetJobmanagerId() == f.jmID
	if f.ha && same {
		acts = append(acts, cancelTasks{token: f.token, held: true,
			msg:    "registered again with the same JobManager, which failed the tasks it had placed here: canceling them",
			reason: fmt.Sprintf("jobmanager_id %q unchanged", f.jmID)})
	}
	acts = append(acts, registered{token: f.token, target: f.target, resp: resp, newLeader: !same},
		startHeartbeat{token: f.token, resp: resp})
	_, f.hbTimeout = heartbeatSettings(resp)
	f.phase, f.jmID = phaseRegistered, resp.GetJobmanagerId()
	f.lostAt, f.abandoned, f.retryAt = time.Time{}, false, time.Time{}
	f.backoff = f.initialBackoff()
	return acts
}

// startLeaderless starts the bound of a leaderless period, unless one runs.
func (f *follower) startLeaderless(now time.Time) {
	if f.lostAt.IsZero() {
		f.lostAt, f.abandoned = now, false
	}
}

// tryRegister appends a registration with the leader, or waits for etcd to
// name one.
func (f *follower) tryRegister(acts []followerAction) []followerAction {
	f.retryAt = time.Time{}
	if f.leader.address == "" {
		f.phase = phaseIdle
		return acts
	}
	f.token++
	f.phase, f.target = phaseRegistering, f.leader
	return append(acts, register{token: f.token, target: f.target, report: f.ha})
}
