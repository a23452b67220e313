package ha

import (
	"fmt"
	"time"
)

// Leadership is the pure state machine of one JobManager's leadership
// through etcd's election recipe (go.etcd.io/etcd/client/v3/concurrency):
// a session (a lease kept alive), a campaign (a key under the election
// prefix, holding this JobManager's address, whose create revision is the
// epoch), and an observer of whoever leads. Like the scheduler and the
// checkpoint coordinator it does no I/O, starts no goroutine and reads no
// clock: the shell feeds it what etcd says and carries out what it returns,
// in order.
//
//	l := ha.NewLeadership(advertisedAddress)
//	events <- ha.Start{}
//	for ev := range events { // from the goroutines below, and SIGTERM as Shutdown
//		for _, a := range l.Step(time.Now(), ev) {
//			switch a := a.(type) {
//			case ha.CreateSession: // go: concurrency.NewSession(lease-ttl), retried with backoff;
//			                       //     then SessionGranted{a.Session}; SessionLost{a.Session} when its Done() closes
//			case ha.Campaign:      // go: election.Campaign(ctx, a.Address);
//			                       //     then Elected{a.Session, the key's CreateRevision}
//			case ha.StartLeading:  // set the fencing epoch to a.Epoch, then recover the jobs (Recovery)
//			case ha.StopLeading:   // synchronously, before anything else: fence (see below)
//			case ha.CloseSession:  // revoke the lease of a.Session: its election key goes with it
//			case ha.LeaderChanged: // what a standby answers API calls with; `weir jobmanagers`
//			case ha.Exit:          // log a.Reason, exit with a.Code
//			case ha.Log:           // log a.Message
//			}
//		}
//	}
//
// One more goroutine watches the election (election.Observe) and feeds
// LeaderObserved for each leader it reports, or NoLeaderObserved with the
// revision at which the election prefix was empty.
//
// # States
//
//	CONNECTING  --SessionGranted--> CAMPAIGNING --Elected--> LEADING
//	CAMPAIGNING --SessionLost--> CONNECTING (a new session)
//	LEADING     --SessionLost, a newer leader observed, no leader observed--> LOST (exit)
//	any         --Shutdown--> STOPPED
//
// CONNECTING and CAMPAIGNING are a standby: it holds no job, so losing its
// session costs nothing and it simply asks for a new one.
//
// # After losing leadership
//
// A leader whose session is lost, or that sees another leader or none
// while it believes it leads (its key is gone: the lease expired while
// the process was paused, or etcd was unreachable for longer than the
// TTL), stops acting at once (StopLeading: no checkpoint trigger, no
// deployment, no commit notification, no cancellation, no HA store write)
// and then exits (Exit, ExitCodeLeadershipLost) for its supervisor
// (systemd Restart=always, a Kubernetes Deployment) to start it again as a
// standby. It does not stand by in the same process: a JobManager keeps
// per job the scheduler's execution graph, a checkpoint coordinator,
// savepoint requests waiting for answers, a queue of calls per TaskManager
// and goroutines still writing _metadata or deleting checkpoint files.
// Dropping all of that while those goroutines run would be a second
// shutdown path, rarely exercised and easy to get subtly wrong (one
// deletion finishing after a new leader retained the checkpoint is one
// too many). An exit ends every goroutine at once, and the restarted
// process becomes a standby through the path every start takes. A
// JobManager therefore leads at most once in its life.
//
// # Invariants
//
//   - Epochs never go backwards. Every observation carries an etcd
//     revision (a leader's epoch is its key's create revision); one not
//     above the highest seen is stale and changes nothing. An Elected whose
//     epoch is below the highest seen, or not above a revision at which no
//     leader existed, is refused: that campaign's key cannot be the leader,
//     so its session is closed and the JobManager stands by again.
//   - StartLeading comes only from Elected of the current session, and at
//     most once; StopLeading follows it at most once, before Exit or with
//     Shutdown.
//   - Events of another session than the current one (a campaign that
//     returned after its session was lost) are dropped: the core hands out
//     a token with each CreateSession, as the scheduler does with slow I/O.
//   - Step is deterministic.
type Leadership struct {
	address string
	state   LeadershipState
	started bool
	session uint64 // token of the current session; 0 before Start
	granted bool   // the current session was granted and not lost
	epoch   int64  // while LEADING (and after: the epoch that was lost)
	// seen is the highest revision observed: a leader's epoch
	// (seenLeader) or a revision at which the election had no key.
	seen       int64
	seenLeader bool
	leader     LeaderInfo // what LeaderChanged last published
}

// LeadershipState is where a JobManager stands in the election.
type LeadershipState string

// Leadership states.
const (
	// StateConnecting: asking etcd for a session (a standby).
	StateConnecting LeadershipState = "CONNECTING"
	// StateCampaigning: holding a session, waiting in the election (a standby).
	StateCampaigning LeadershipState = "CAMPAIGNING"
	// StateLeading: the leader at Epoch.
	StateLeading LeadershipState = "LEADING"
	// StateLost: was the leader, is fenced and exits.
	StateLost LeadershipState = "LOST"
	// StateStopped: shut down.
	StateStopped LeadershipState = "STOPPED"
)

// ExitCodeLeadershipLost is the exit code of a JobManager that lost its
// leadership (EX_TEMPFAIL of sysexits.h: run it again). Its supervisor
// restarts it as a standby.
const ExitCodeLeadershipLost = 75

// LeaderInfo is the leader as this JobManager knows it.
type LeaderInfo struct {
	Address string // "" when no leader is known
	Epoch   int64
	Since   time.Time // when this JobManager learned of it
}

// NewLeadership returns the leadership of the JobManager that advertises
// address (host:port of its gRPC server, what clients and TaskManagers
// are sent to). Step(now, Start{}) begins it.
func NewLeadership(address string) *Leadership {
	return &Leadership{address: address, state: StateConnecting}
}

// State returns where this JobManager stands.
func (l *Leadership) State() LeadershipState { return l.state }

// Epoch returns the epoch this JobManager leads at, 0 when it does not lead.
func (l *Leadership) Epoch() int64 {
	if l.state != StateLeading {
		return 0
	}
	return l.epoch
}

// Leader returns the leader as last published by LeaderChanged.
func (l *Leadership) Leader() LeaderInfo { return l.leader }

// LeadershipEvent is an input of Leadership.Step.
type LeadershipEvent interface{ isLeadershipEvent() }

// Start begins: the first session is requested.
type Start struct{}

// SessionGranted: the session requested with token Session exists.
type SessionGranted struct{ Session uint64 }

// SessionLost: the session's lease expired or could not be kept alive
// (concurrency.Session.Done closed).
type SessionLost struct {
	Session uint64
	Reason  string
}

// Elected: the campaign of session Session won; Epoch is the create
// revision of its election key.
type Elected struct {
	Session uint64
	Epoch   int64
}

// LeaderObserved: the election's leader is the key created at revision
// Epoch, holding Address.
type LeaderObserved struct {
	Address string
	Epoch   int64
}

// NoLeaderObserved: at etcd revision Revision the election had no key.
type NoLeaderObserved struct{ Revision int64 }

// Shutdown: the process stops (SIGTERM). A leader resigns by closing its
// session, so that a standby takes over at once rather than after the TTL.
type Shutdown struct{}

func (Start) isLeadershipEvent()            {}
func (SessionGranted) isLeadershipEvent()   {}
func (SessionLost) isLeadershipEvent()      {}
func (Elected) isLeadershipEvent()          {}
func (LeaderObserved) isLeadershipEvent()   {}
func (NoLeaderObserved) isLeadershipEvent() {}
func (Shutdown) isLeadershipEvent()         {}

// LeadershipAction is an output of Leadership.Step.
type LeadershipAction interface{ isLeadershipAction() }

// CreateSession: create an etcd session (a lease of
// high-availability.etcd.lease-ttl, kept alive) and answer SessionGranted
// with this token; retry with backoff while etcd cannot be reached.
type CreateSession struct{ Session uint64 }

// Campaign: campaign in the election with Address as the key's value, on
// the session Session; answer Elected.
type Campaign struct {
	Session uint64
	Address string
}

// StartLeading: this JobManager leads at Epoch. Every JobManager ->
// TaskManager call and every HA store write from now on carries Epoch;
// recover the jobs of the HA store (Recovery).
type StartLeading struct{ Epoch int64 }

// StopLeading: stop acting at once, before carrying out anything else:
// no checkpoint is triggered or completed, no task deployed, notified or
// canceled, nothing written to the HA store. What is in flight is fenced
// by etcd (writes are conditioned on the epoch's key) and by the
// TaskManagers (calls carry the epoch).
type StopLeading struct {
	Epoch  int64
	Reason string
}

// CloseSession: revoke the session's lease; the election key of the
// session, if any, is deleted with it. A session already lost needs
// nothing.
type CloseSession struct{ Session uint64 }

// LeaderChanged: the leader is now Leader (Address "" when none is known).
type LeaderChanged struct{ Leader LeaderInfo }

// Exit: end the process with Code for the supervisor to restart it (see
// "After losing leadership").
type Exit struct {
	Code   int
	Reason string
}

// Log is worth a log line and needs no other action (a stale or refused
// event).
type Log struct{ Message string }

func (CreateSession) isLeadershipAction() {}
func (Campaign) isLeadershipAction()      {}
func (StartLeading) isLeadershipAction()  {}
func (StopLeading) isLeadershipAction()   {}
func (CloseSession) isLeadershipAction()  {}
func (LeaderChanged) isLeadershipAction() {}
func (Exit) isLeadershipAction()          {}
func (Log) isLeadershipAction()           {}

func logf(format string, args ...any) Log { return Log{Message: fmt.Sprintf(format, args...)} }

// Step applies one event and returns what the caller must do now, in order.
func (l *Leadership) Step(now time.Time, ev LeadershipEvent) []LeadershipAction {
	switch ev := ev.(type) {
	case Start:
		if l.started {
			return []LeadershipAction{logf("leadership: already started")}
		}
		l.started = true
		if l.state == StateStopped {
			return nil
		}
		return []LeadershipAction{l.newSession()}

	case SessionGranted:
		if ev.Session == 0 || ev.Session != l.session {
			// Not ours any more (or never): its lease must not linger.
			return []LeadershipAction{CloseSession{Session: ev.Session},
				logf("leadership: session %d granted, but session %d is current: closed", ev.Session, l.session)}
		}
		switch {
		case l.state == StateStopped:
			return []LeadershipAction{CloseSession{Session: ev.Session}}
		case l.granted || l.state != StateConnecting:
			return []LeadershipAction{logf("leadership: session %d granted twice", ev.Session)}
		}
		l.granted = true
		l.state = StateCampaigning
		return []LeadershipAction{Campaign{Session: l.session, Address: l.address}}

	case Elected:
		if ev.Session != l.session || l.state != StateCampaigning {
			return []LeadershipAction{logf("leadership: elected at epoch %d in session %d while %s in session %d: ignored",
				ev.Epoch, ev.Session, l.state, l.session)}
		}
		if ev.Epoch < l.seen || (ev.Epoch == l.seen && !l.seenLeader) {
			refused := logf("leadership: elected at epoch %d, not above the highest epoch seen (%d): refused, campaigning again in a new session",
				ev.Epoch, l.seen)
			closeOld := CloseSession{Session: l.session}
			l.state = StateConnecting
			return []LeadershipAction{refused, closeOld, l.newSession()}
		}
		l.state, l.epoch, l.seen, l.seenLeader = StateLeading, ev.Epoch, ev.Epoch, true
		acts := []LeadershipAction{StartLeading{Epoch: ev.Epoch}}
		return l.publish(acts, now, l.address, ev.Epoch)

	case LeaderObserved:
		switch {
		case l.state == StateLost || l.state == StateStopped:
			return nil
		case ev.Epoch <= 0:
			return []LeadershipAction{logf("leadership: observed leader %q at invalid epoch %d: ignored", ev.Address, ev.Epoch)}
		case l.state == StateLeading && ev.Epoch > l.epoch:
			l.seen, l.seenLeader = ev.Epoch, true
			return l.lose(now, fmt.Sprintf("JobManager %s leads at epoch %d, above ours (%d)", ev.Address, ev.Epoch, l.epoch),
				true, LeaderInfo{Address: ev.Address, Epoch: ev.Epoch, Since: now})
		case l.state == StateLeading && ev.Epoch == l.epoch:
			return nil // ourselves
		case ev.Epoch > l.seen:
			l.seen, l.seenLeader = ev.Epoch, true
			return l.publish(nil, now, ev.Address, ev.Epoch)
		case ev.Epoch == l.seen && l.seenLeader:
			return nil // the same leader again
		}
		return []LeadershipAction{logf("leadership: observed leader %s at epoch %d, not above revision %d already seen: stale, ignored",
			ev.Address, ev.Epoch, l.seen)}

	case NoLeaderObserved:
		switch {
		case l.state == StateLost || l.state == StateStopped:
			return nil
		case l.state == StateLeading && ev.Revision >= l.epoch:
			l.seen, l.seenLeader = max(l.seen, ev.Revision), false
			return l.lose(now, fmt.Sprintf("no leader in etcd at revision %d: our election key (epoch %d) is gone", ev.Revision, l.epoch),
				true, LeaderInfo{})
		case l.state != StateLeading && ev.Revision > l.seen:
			l.seen, l.seenLeader = ev.Revision, false
			if l.leader.Address == "" {
				return nil
			}
			return l.publish(nil, now, "", 0)
		case ev.Revision == l.seen && !l.seenLeader:
			return nil // the same empty election again
		}
		return []LeadershipAction{logf("leadership: no leader at revision %d, not above revision %d already seen: stale, ignored",
			ev.Revision, max(l.seen, l.epoch))}

	case SessionLost:
		if ev.Session != l.session || !l.granted {
			if l.state == StateLost || l.state == StateStopped {
				return nil
			}
			return []LeadershipAction{logf("leadership: session %d lost (%s), but session %d is current: ignored", ev.Session, ev.Reason, l.session)}
		}
		l.granted = false
		switch l.state {
		case StateLeading:
			return l.lose(now, "etcd session lost: "+ev.Reason, false, LeaderInfo{})
		case StateCampaigning:
			l.state = StateConnecting
			return []LeadershipAction{logf("leadership: etcd session %d lost while standing by (%s): creating a new one", ev.Session, ev.Reason),
				l.newSession()}
		}
		return nil

	case Shutdown:
		switch l.state {
		case StateLeading:
			l.state = StateStopped
			acts := []LeadershipAction{StopLeading{Epoch: l.epoch, Reason: "shutdown"}, CloseSession{Session: l.session}}
			return l.publish(acts, now, "", 0)
		case StateCampaigning:
			l.state = StateStopped
			return []LeadershipAction{CloseSession{Session: l.session}}
		case StateConnecting:
			// A session still being created is closed when it is granted.
			l.state = StateStopped
		}
		return nil
	}
	return []LeadershipAction{logf("leadership: unknown event %T", ev)}
}

// newSession asks for a session with a fresh token.
func (l *Leadership) newSession() CreateSession {
	l.session++
	l.granted = false
	return CreateSession{Session: l.session}
}

// publish appends LeaderChanged when the leader differs from the one
// published last.
func (l *Leadership) publish(acts []LeadershipAction, now time.Time, address string, epoch int64) []LeadershipAction {
	if l.leader.Address == address && l.leader.Epoch == epoch {
		return acts
	}
	l.leader = LeaderInfo{Address: address, Epoch: epoch}
	if address != "" {
		l.leader.Since = now
	}
	return append(acts, LeaderChanged{Leader: l.leader})
}

// lose fences a leader and makes it exit. closeSession: the session may
// still be alive (the loss was observed, not reported by the session).
func (l *Leadership) lose(now time.Time, reason string, closeSession bool, next LeaderInfo) []LeadershipAction {
	l.state = StateLost
	acts := []LeadershipAction{StopLeading{Epoch: l.epoch, Reason: reason}}
	if closeSession {
		acts = append(acts, CloseSession{Session: l.session})
	}
	acts = l.publish(acts, now, next.Address, next.Epoch)
	return append(acts, Exit{Code: ExitCodeLeadershipLost,
		Reason: fmt.Sprintf("lost the leadership at epoch %d: %s; exiting for the supervisor to restart this JobManager as a standby", l.epoch, reason)})
}
