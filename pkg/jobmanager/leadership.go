package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

// High availability (docs/high-availability.md). With an Election
// (high-availability.type: etcd) a JobManager starts as a standby: it
// serves ListJobManagers and health, and refuses every other call with
// UNAVAILABLE and the leader's address in the trailer (the CLI and the
// TaskManagers follow it). The pure ha.Leadership decides; this file
// carries out what it says:
//
//   - StartLeading: the epoch is set (every call to a TaskManager carries
//     it from now on), then the jobs of the HA store are recovered
//     (recovery.go).
//   - StopLeading: fenced at once, before anything else: the store
//     refuses every write, calls to TaskManagers are refused here, the
//     API refuses calls. Then Exit: the process exits with
//     ha.ExitCodeLeadershipLost for its supervisor to start it again as a
//     standby (a JobManager leads at most once; see ha.Leadership).
//
// Standalone (no Election) leads from the start, unfenced (epoch 0).

// LeaderElection is what the JobManager needs from the HA store to take
// part in the election (ha.Etcd).
type LeaderElection interface {
	StartSession(ctx context.Context) (lost <-chan struct{}, err error)
	Campaign(ctx context.Context) (epoch int64, err error)
	StopLeading()
	CloseSession(ctx context.Context) error
	Observe(ctx context.Context) <-chan ha.ObservedLeader
	Contenders(ctx context.Context) ([]ha.Contender, error)
}

// storeEpoch is what ha.Etcd also offers: the epoch the store itself
// believes this JobManager leads at, 0 as soon as its session is gone or
// etcd refused a write.
type storeEpoch interface{ Epoch() int64 }

// Election timing: a session that etcd does not grant is asked for again
// with a backoff; one attempt is bounded so that a JobManager started
// before etcd is up keeps trying.
const (
	sessionAttemptTimeout = 10 * time.Second
	sessionBackoffMin     = 250 * time.Millisecond
	sessionBackoffMax     = 5 * time.Second
	// resignTimeout bounds the revocation of the session on shutdown; if
	// etcd is not reachable the lease expires by itself.
	resignTimeout = 2 * time.Second
)

// leading reports whether this JobManager may act: always when standalone,
// with HA while it leads and is not fenced.
func (jm *JobManager) leading() bool {
	if jm.election == nil {
		return true
	}
	// The store knows first when the session ends or etcd refuses a
	// write; the leadership loop learns it an event later.
	e := jm.leadEpoch.Load()
	if se, ok := jm.election.(storeEpoch); ok && se.Epoch() != e {
		return false
	}
	return e > 0
}

// leaderEpoch is the epoch sent to TaskManagers: 0 when standalone.
func (jm *JobManager) leaderEpoch() int64 { return jm.leadEpoch.Load() }

// errNotLeading is what a fenced or standby JobManager's calls to
// TaskManagers fail with, without being sent.
var errNotLeading = errors.New("this JobManager is not the leader: the call is not sent")

// mayCall is checked before each call to a TaskManager.
func (jm *JobManager) mayCall() error {
	if !jm.leading() {
		return errNotLeading
	}
	return nil
}

// leadershipLoop runs the election until Close: the pure ha.Leadership and
// the goroutines that talk to etcd for it.
func (jm *JobManager) leadershipLoop(advertised string) {
	defer jm.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan ha.LeadershipEvent)
	send := func(ev ha.LeadershipEvent) {
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	}
	jm.wg.Add(1)
	go func() {
		defer jm.wg.Done()
		for ol := range jm.election.Observe(ctx) {
			if ol.Address == "" {
				send(ha.NoLeaderObserved{Revision: ol.Revision})
			} else {
				send(ha.LeaderObserved{Address: ol.Address, Epoch: ol.Epoch})
			}
		}
	}()
	l := ha.NewLeadership(advertised)
	apply := func(ev ha.LeadershipEvent) {
		for _, a := range l.Step(time.Now(), ev) {
			jm.doLeadership(ctx, a, send)
		}
		jm.haState.Store(l.State())
	}
	apply(ha.Start{})
	for {
		select {
		case ev := <-events:
			apply(ev)
		case <-jm.stopping:
			apply(ha.Shutdown{})
			return
		}
	}
}

// doLeadership carries out one action of ha.Leadership. Slow work runs on
// goroutines that answer with events through send.
func (jm *JobManager) doLeadership(ctx context.Context, a ha.LeadershipAction, send func(ha.LeadershipEvent)) {
	switch a := a.(type) {
	case ha.CreateSession:
		jm.wg.Add(1)
		go func() {
			defer jm.wg.Done()
			jm.createSession(ctx, a.Session, send)
		}()
	case ha.Campaign:
		jm.wg.Add(1)
		go func() {
			defer jm.wg.Done()
			epoch, err := jm.election.Campaign(ctx)
			switch {
			case err == nil:
				send(ha.Elected{Session: a.Session, Epoch: epoch})
			case ctx.Err() != nil:
			default:
				// Campaign's contract: close the session after an error
				// (its key may still stand). The session's watcher then
				// reports it lost, and a new one campaigns.
				jm.log.Warn("campaign for leadership failed: starting a new etcd session", zap.Error(err))
				cctx, cancel := context.WithTimeout(ctx, resignTimeout)
				_ = jm.election.CloseSession(cctx)
				cancel()
			}
		}()
	case ha.StartLeading:
		// The recovery begins before any TaskManager can register.
		jm.mu.Lock()
		jm.beginRecovery()
		jm.leadEpoch.Store(a.Epoch)
		jm.mu.Unlock()
		jm.leaderSince.Store(time.Now().UnixMilli())
		jm.log.Info("leading: recovering the jobs of the HA store", zap.Int64("epoch", a.Epoch))
		jm.wg.Add(1)
		go func() {
			defer jm.wg.Done()
			jm.recoverJobs(a.Epoch)
		}()
	case ha.StopLeading:
		// Fence first: nothing this process does from now on may act.
		jm.leadEpoch.Store(0)
		jm.election.StopLeading()
		jm.log.Error("leadership lost: this JobManager stops acting at once", zap.Int64("epoch", a.Epoch), zap.String("reason", a.Reason))
	case ha.CloseSession:
		cctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
		if err := jm.election.CloseSession(cctx); err != nil {
			jm.log.Warn("close etcd session", zap.Error(err))
		}
		cancel()
	case ha.LeaderChanged:
		li := a.Leader
		jm.leader.Store(&li)
		if li.Address == "" {
			jm.log.Info("no JobManager leads at the moment")
		} else {
			jm.log.Info("leader", zap.String("address", li.Address), zap.Int64("epoch", li.Epoch))
		}
	case ha.Exit:
		jm.log.Error("exiting for the supervisor to restart this JobManager as a standby", zap.Int("code", a.Code), zap.String("reason", a.Reason))
		jm.exit(a.Code)
	case ha.Log:
		jm.log.Info(a.Message)
	}
}

// createSession asks etcd for a session until it grants one (or ctx ends),
// answers SessionGranted, then SessionLost when the session ends.
func (jm *JobManager) createSession(ctx context.Context, session uint64, send func(ha.LeadershipEvent)) {
	backoff := sessionBackoffMin
	for failures := 0; ; failures++ {
		actx, cancel := context.WithTimeout(ctx, sessionAttemptTimeout)
		lost, err := jm.election.StartSession(actx)
		cancel()
		if err == nil {
			send(ha.SessionGranted{Session: session})
			select {
			case <-lost:
				send(ha.SessionLost{Session: session, Reason: "its lease expired, was revoked, or etcd was unreachable for the lease TTL"})
			case <-ctx.Done():
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if failures%10 == 0 { // the first failure and then every tenth
			jm.log.Warn(fmt.Sprintf("cannot start an etcd session: retrying every %s", sessionBackoffMax), zap.Int("attempts", failures+1), zap.Error(err))
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, sessionBackoffMax)
	}
}

// standbyAllowed are the methods a standby serves: who leads, and health.
func standbyAllowed(method string) bool {
	return method == weirpb.JobService_ListJobManagers_FullMethodName ||
		strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// notLeaderError refuses a call that only the leader serves: UNAVAILABLE,
// with the leader's address (if known) in the trailer for the client to
// follow.
func (jm *JobManager) notLeaderError(ctx context.Context) error {
	addr := ""
	if li := jm.leader.Load(); li != nil {
		addr = li.Address
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs(leaderepoch.LeaderAddressKey, addr))
	if addr == "" {
		return status.Errorf(codes.Unavailable, "JobManager %s is a standby and no JobManager leads at the moment (an election is under way): retry", jm.advertised)
	}
	return status.Errorf(codes.Unavailable, "JobManager %s is a standby: the leader is %s", jm.advertised, addr)
}

// leaderOnlyUnary refuses, on a standby or a fenced JobManager, every call
// but standbyAllowed ones.
func (jm *JobManager) leaderOnlyUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !standbyAllowed(info.FullMethod) && !jm.awaitLeading(ctx) {
		return nil, jm.notLeaderError(ctx)
	}
	return handler(ctx, req)
}

// leaderOnlyStream is leaderOnlyUnary for streams (the heartbeats).
func (jm *JobManager) leaderOnlyStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !standbyAllowed(info.FullMethod) && !jm.awaitLeading(ss.Context()) {
		return jm.notLeaderError(ss.Context())
	}
	return handler(srv, ss)
}

// becomingLeaderWait bounds how long a call waits for this JobManager's
// leadership once etcd names it: observers (TaskManagers, the CLI) see
// its election key a moment before its campaign returns, and would
// otherwise be told to retry by the leader itself.
const becomingLeaderWait = 2 * time.Second

// awaitLeading reports whether this JobManager leads, waiting a little if
// etcd already names it the leader.
func (jm *JobManager) awaitLeading(ctx context.Context) bool {
	if jm.leading() {
		return true
	}
	li := jm.leader.Load()
	if li == nil || li.Address != jm.advertised || jm.leaderSince.Load() != 0 {
		return false // another leads, or this one led already and was fenced
	}
	deadline := time.Now().Add(becomingLeaderWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-jm.stopping:
			return false
		}
		if jm.leading() {
			return true
		}
	}
	return false
}

// ListJobManagers answers on every JobManager: those in the election
// (etcd), or this one when standalone. Since is known for this JobManager
// (when it started, or began to lead) and for the leader it observed.
func (s *jobService) ListJobManagers(ctx context.Context, _ *weirpb.ListJobManagersRequest) (*weirpb.ListJobManagersResponse, error) {
	jm := s.jm
	self := &weirpb.JobManagerInfo{Address: jm.advertised, SinceUnixMs: jm.started.UnixMilli()}
	if jm.leading() {
		self.Leader, self.Epoch = true, jm.leaderEpoch()
		if since := jm.leaderSince.Load(); since != 0 {
			self.SinceUnixMs = since
		}
	}
	if jm.election == nil {
		return &weirpb.ListJobManagersResponse{Jobmanagers: []*weirpb.JobManagerInfo{self}}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, haTimeout)
	defer cancel()
	cs, err := jm.election.Contenders(cctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list the JobManagers: %v", err)
	}
	li := jm.leader.Load()
	var out []*weirpb.JobManagerInfo
	for _, c := range cs {
		info := &weirpb.JobManagerInfo{Address: c.Address, Leader: c.Leader}
		if c.Leader {
			info.Epoch = c.Revision
		}
		switch {
		case c.Address == jm.advertised:
			info.SinceUnixMs = self.SinceUnixMs
		case c.Leader && li != nil && li.Address == c.Address:
			info.SinceUnixMs = li.Since.UnixMilli()
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b *weirpb.JobManagerInfo) int { return strings.Compare(a.Address, b.Address) })
	return &weirpb.ListJobManagersResponse{Jobmanagers: out}, nil
}
