package jobmanager

import (
	"fmt"

	"github.com/weirstream/weir/pkg/ha"
)

// Ready is the JobManager's readiness (/readyz on the metrics port,
// docs/deployment.md): whether it can serve the job API, directly as the
// leader or by naming the leader as a healthy standby, and in one line
// what it is doing or why it cannot. It reads atomics only: a probe never
// waits for the JobManager's lock or for etcd.
//
//   - standalone: ready from Start to Close;
//   - the leader: ready while it leads and is not fenced;
//   - a standby: ready while it holds an etcd session and etcd names a
//     leader other than itself (what its refusals tell clients); not ready
//     while it has no session (etcd unreachable) or no one leads;
//   - a leader that lost its leadership: not ready, it is exiting.
func (jm *JobManager) Ready() (bool, string) {
	select {
	case <-jm.stopping:
		return false, "shutting down"
	default:
	}
	if jm.election == nil {
		return true, "leader (standalone)"
	}
	state, _ := jm.haState.Load().(ha.LeadershipState)
	switch state {
	case "":
		return false, "starting: not in the leader election yet"
	case ha.StateLeading:
		if e := jm.leadEpoch.Load(); e > 0 && jm.leading() {
			return true, fmt.Sprintf("leader (epoch %d)", e)
		}
		return false, "leadership lost: exiting for the supervisor to restart this JobManager as a standby"
	case ha.StateLost:
		return false, "leadership lost: exiting for the supervisor to restart this JobManager as a standby"
	case ha.StateStopped:
		return false, "shutting down"
	case ha.StateConnecting:
		return false, "standby without an etcd session: connecting to etcd (high-availability.etcd.endpoints)"
	}
	// CAMPAIGNING: a standby with a session.
	li := jm.leader.Load()
	switch {
	case li == nil || li.Address == "":
		return false, "standby: no JobManager leads at the moment"
	case li.Address == jm.advertised:
		return false, "standby: etcd names this JobManager the leader; taking over"
	}
	return true, fmt.Sprintf("standby, following the leader %s (epoch %d)", li.Address, li.Epoch)
}
