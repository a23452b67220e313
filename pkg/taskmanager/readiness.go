package taskmanager

import "google.golang.org/grpc/status"

// readiness is what /readyz on the metrics port says of a TaskManager
// (docs/deployment.md): ready while it is registered with the JobManager
// (in HA mode, with the leader), which is when it can be given tasks. The
// registration loop publishes it after each step of the follower; a probe
// reads one atomic pointer and never waits for the loop.
type readiness struct {
	ready  bool
	status string
	// failed is why the last registration with leader failed, kept while
	// the TaskManager waits to try again.
	failed string
	leader leaderInfo
}

// Ready reports whether this TaskManager is registered with the
// JobManager, and in one line with which one, or why not.
func (tm *TaskManager) Ready() (bool, string) {
	r := tm.readiness.Load()
	if r == nil {
		return false, "starting: not registering with a JobManager yet"
	}
	return r.ready, r.status
}

// publishReadiness records the follower's state after a step; ev is the
// event of that step. Called by the registration loop only; once Shutdown
// has published readinessStopped, nothing replaces it.
func (tm *TaskManager) publishReadiness(f *follower, ev followerEvent) {
	for {
		prev := tm.readiness.Load()
		if prev == readinessStopped || tm.readiness.CompareAndSwap(prev, nextReadiness(prev, f, ev)) {
			return
		}
	}
}

// readinessStopped is published when Shutdown begins and when the
// registration loop ends.
var readinessStopped = &readiness{status: "shutting down"}

// nextReadiness is the follower's state in one line: with whom it is
// registered, or why it is not (a failed registration's error is kept
// until the next attempt).
func nextReadiness(prev *readiness, f *follower, ev followerEvent) *readiness {
	r := &readiness{leader: f.leader}
	switch {
	case f.phase == phaseRegistered:
		r.ready, r.status = true, "registered with the JobManager "+f.target.String()
	case f.phase == phaseRegistering:
		r.status = "registering with the JobManager " + f.target.String()
	case f.leader.address == "":
		r.status = "etcd names no JobManager leader"
	default:
		if failed, ok := ev.(registrationFailed); ok && failed.err != nil {
			// gRPC's message without "rpc error: code = ... desc =".
			r.failed = status.Convert(failed.err).Message()
		} else if prev != nil && prev.leader == f.leader {
			r.failed = prev.failed
		}
		// The error last: a probe cuts its line at 300 bytes.
		r.status = "not registered with the JobManager " + f.leader.String()
		if r.failed != "" {
			r.status += ", retrying: " + r.failed
		}
	}
	return r
}
