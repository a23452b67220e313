package taskmanager

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/proto/weirpb"
)

// Registration timing. The first retry comes quickly (a JobManager that is
// starting up at the same time), later ones back off to the configured
// maximum.
const (
	initialRegistrationBackoff = 500 * time.Millisecond
	registrationTimeout        = 10 * time.Second
	// Used when the JobManager sends no heartbeat settings.
	defaultHeartbeatInterval = 10 * time.Second
	defaultHeartbeatTimeout  = 50 * time.Second
)

// nextBackoff doubles the backoff up to max.
func nextBackoff(cur, max time.Duration) time.Duration {
	if cur *= 2; cur > max {
		return max
	}
	return cur
}

// heartbeatVerdict decides, from one answer of the JobManager, whether the
// registration is still valid; if not, reason says why. An answer without
// a jobmanager_id does not count as a change.
func heartbeatVerdict(registeredJM string, hb *weirpb.JobManagerHeartbeat) (ok bool, reason string) {
	switch {
	case hb.GetUnknownTaskmanager():
		return false, "the JobManager does not know this TaskManager"
	case hb.GetJobmanagerId() != "" && hb.GetJobmanagerId() != registeredJM:
		return false, fmt.Sprintf("the JobManager changed (id %q, registered with %q)", hb.GetJobmanagerId(), registeredJM)
	}
	return true, ""
}

// heartbeatSettings returns the interval and timeout the JobManager gave,
// or defaults for missing values.
func heartbeatSettings(r *weirpb.RegisterTaskManagerResponse) (interval, timeout time.Duration) {
	interval = time.Duration(r.GetHeartbeatIntervalMs()) * time.Millisecond
	timeout = time.Duration(r.GetHeartbeatTimeoutMs()) * time.Millisecond
	if interval <= 0 {
		interval = defaultHeartbeatInterval
	}
	if timeout <= 0 {
		timeout = defaultHeartbeatTimeout
	}
	return interval, timeout
}

// connectLoop is the shell of the follower (leader.go): it registers with
// the JobManager and keeps the heartbeat going until ctx is canceled,
// following the leader etcd names in HA mode. Registration calls and
// heartbeat streams run in goroutines of their own (one session at a
// time, ended by endSession), so that etcd's news is handled while they
// block.
func (tm *TaskManager) connectLoop(ctx context.Context) {
	l := &followerShell{tm: tm, ctx: ctx, events: make(chan followerEvent), conns: map[string]*grpc.ClientConn{}}
	defer l.close()
	f := newFollower(tm.leaders != nil, tm.jmAddr, tm.cfg.Duration(config.TaskManagerRegistrationBackoffMax))
	var observed <-chan ha.ObservedLeader
	if tm.leaders != nil {
		observed = tm.leaders.Observe(ctx)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer tm.readiness.Store(readinessStopped)
	l.do(f.step(time.Now(), startFollowing{}))
	tm.publishReadiness(f, startFollowing{})
	for {
		timer.Stop()
		if d := f.deadline(); !d.IsZero() {
			timer.Reset(time.Until(d))
		}
		var ev followerEvent
		select {
		case <-ctx.Done():
			return
		case o, ok := <-observed:
			if !ok {
				// The store was closed (or ctx ended): the last leader
				// named stays the one to follow.
				observed = nil
				if ctx.Err() == nil {
					tm.log.Error("stopped observing the JobManager leader in etcd: following the last one named")
				}
				continue
			}
			ev = leaderObserved{leader: leaderInfo{address: o.Address, epoch: o.Epoch}}
		case ev = <-l.events:
		case <-timer.C:
			ev = followerTick{}
		}
		l.do(f.step(time.Now(), ev))
		tm.publishReadiness(f, ev)
	}
}

// followerShell carries out the follower's actions. Owned by connectLoop's
// goroutine, except events, which the session goroutines send to.
type followerShell struct {
	tm     *TaskManager
	ctx    context.Context
	events chan followerEvent
	cur    *session // the current registration attempt or registration
	wg     sync.WaitGroup
	// conns: HA mode's connections by JobManager address: the published
	// leader's and the current target's, no others.
	conns     map[string]*grpc.ClientConn
	published string // address of the JobManager that tm.jm calls
}

// session is one registration attempt and, once accepted, its heartbeat.
type session struct {
	token  uint64
	target leaderInfo
	jm     weirpb.JobManagerGatewayClient
	ctx    context.Context
	cancel context.CancelFunc
	held   []*taskEntry     // the tasks held when the registration was sent
	report []reportedStatus // what it reported (HA)
}

func (l *followerShell) do(acts []followerAction) {
	tm := l.tm
	for _, a := range acts {
		switch a := a.(type) {
		case register:
			l.register(a)
		case endSession:
			if l.cur != nil && l.cur.token == a.token {
				l.cur.cancel()
			}
		case raiseFence:
			tm.fence.admit(a.epoch)
		case leaderChanged:
			if a.leader.address == "" {
				tm.log.Warn("etcd names no JobManager leader")
				continue
			}
			tm.leaderChanges.Inc()
			tm.log.Info("JobManager leader changed", zap.String("leader", a.leader.address), zap.Int64("epoch", a.leader.epoch))
		case registered:
			l.registered(a)
		case startHeartbeat:
			s := l.session(a.token)
			if s == nil {
				continue
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				reason := tm.heartbeat(s.ctx, s.jm, a.resp)
				if s.ctx.Err() == nil {
					l.send(s, registrationLost{token: s.token, reason: reason})
				}
			}()
		case cancelTasks:
			var n int
			if a.held {
				s := l.session(a.token)
				if s == nil {
					continue
				}
				tm.mu.Lock()
				clear(tm.ended)
				for _, e := range s.held {
					e.status.forgotten = true
				}
				tm.mu.Unlock()
				n = tm.cancelEntries(s.held)
			} else {
				n = tm.cancelAllTasks()
			}
			tm.log.Warn(a.msg, zap.String("reason", a.reason), zap.Int("tasks_canceled", n))
		case followerLog:
			if ce := tm.log.Check(a.level, a.msg); ce != nil {
				ce.Write(a.fields...)
			}
		}
	}
}

func (l *followerShell) session(token uint64) *session {
	if l.cur == nil || l.cur.token != token {
		return nil
	}
	return l.cur
}

// register starts a registration attempt with a.target.
func (l *followerShell) register(a register) {
	tm := l.tm
	if l.cur != nil {
		l.cur.cancel()
	}
	s := &session{token: a.token, target: a.target}
	s.ctx, s.cancel = context.WithCancel(l.ctx)
	l.cur = s
	if tm.leaders == nil {
		s.jm = weirpb.NewJobManagerGatewayClient(tm.conn)
	} else {
		conn, err := l.conn(a.target.address)
		if err != nil {
			l.wg.Add(1)
			go func() { defer l.wg.Done(); l.send(s, registrationFailed{token: s.token, err: err}) }()
			return
		}
		s.jm = weirpb.NewJobManagerGatewayClient(conn)
	}
	s.held, s.report = tm.heldTasks(a.report)
	req := &weirpb.RegisterTaskManagerRequest{
		TaskmanagerId: tm.id,
		RpcAddress:    tm.rpcAddr,
		DataAddress:   tm.dataAddr,
		NumSlots:      int32(tm.slots),
		CallToken:     tm.guard.token,
	}
	for _, r := range s.report {
		req.Tasks = append(req.Tasks, r.task)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		rctx, cancel := context.WithTimeout(s.ctx, registrationTimeout)
		defer cancel()
		resp, err := s.jm.RegisterTaskManager(rctx, req)
		if err != nil {
			l.send(s, registrationFailed{token: s.token, err: security.ExplainInternalError(err, tm.tls)})
			return
		}
		l.send(s, registrationAccepted{token: s.token, resp: resp})
	}()
}

// registered publishes the JobManager of an accepted registration as the
// one state reports and checkpoint answers go to.
func (l *followerShell) registered(a registered) {
	tm := l.tm
	s := l.session(a.token)
	if s == nil {
		return
	}
	tm.mu.Lock()
	tm.jm = s.jm
	if a.newLeader && tm.leaders != nil {
		tm.leaderGen++
		for _, r := range s.report {
			r.status.known = max(r.status.known, r.seq)
		}
	}
	tm.mu.Unlock()
	if tm.leaders != nil {
		l.published = a.target.address
		l.prune()
	}
	fields := []zap.Field{zap.String("jobmanager", a.target.address), zap.String("jobmanager_id", a.resp.GetJobmanagerId())}
	if tm.leaders != nil {
		fields = append(fields, zap.Int64("leader_epoch", a.resp.GetLeaderEpoch()), zap.Int("tasks_reported", len(s.report)))
	}
	tm.log.Info("registered with the JobManager", fields...)
}

// send delivers ev to connectLoop unless the session was ended.
func (l *followerShell) send(s *session, ev followerEvent) {
	select {
	case l.events <- ev:
	case <-s.ctx.Done():
	}
}

// conn returns the connection to the JobManager at addr (HA mode).
func (l *followerShell) conn(addr string) (*grpc.ClientConn, error) {
	if c := l.conns[addr]; c != nil {
		return c, nil
	}
	c, err := l.tm.dialJobManager(addr)
	if err != nil {
		return nil, err
	}
	l.conns[addr] = c
	l.prune()
	return c, nil
}

// prune closes the connections to JobManagers that are neither the
// published one nor the current target: a deposed leader's calls in
// flight on them fail, which is what they should do.
func (l *followerShell) prune() {
	for addr, c := range l.conns {
		if addr != l.published && (l.cur == nil || addr != l.cur.target.address) {
			_ = c.Close()
			delete(l.conns, addr)
		}
	}
}

// close ends the sessions and waits for their goroutines, then closes the
// connections (every reporter has stopped by now: see shutdown).
func (l *followerShell) close() {
	if l.cur != nil {
		l.cur.cancel()
	}
	l.wg.Wait()
	for addr, c := range l.conns {
		_ = c.Close()
		delete(l.conns, addr)
	}
}

// heartbeat runs the heartbeat stream of one registration with jm and
// returns why it ended ("" when ctx was canceled).
func (tm *TaskManager) heartbeat(ctx context.Context, jm weirpb.JobManagerGatewayClient, reg *weirpb.RegisterTaskManagerResponse) string {
	interval, timeout := heartbeatSettings(reg)
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	stream, err := jm.Heartbeat(hctx)
	if err != nil {
		return fmt.Sprintf("open heartbeat stream: %v", err)
	}
	lost := make(chan string, 1)
	answered := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			hb, err := stream.Recv()
			if err != nil {
				lost <- fmt.Sprintf("heartbeat stream: %v", err)
				return
			}
			if ok, reason := heartbeatVerdict(reg.GetJobmanagerId(), hb); !ok {
				lost <- reason
				return
			}
			select {
			case answered <- struct{}{}:
			default:
			}
		}
	}()

	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastAnswer := time.Now()
	send := func() string {
		err := stream.Send(&weirpb.TaskManagerHeartbeat{TaskmanagerId: tm.id, Tasks: tm.runningTasks()})
		if err != nil {
			// The receiving goroutine reports the stream's real error.
			select {
			case r := <-lost:
				return r
			case <-time.After(time.Second):
				return fmt.Sprintf("send heartbeat: %v", err)
			}
		}
		return ""
	}
	if r := send(); r != "" {
		return r
	}
	for {
		select {
		case <-ctx.Done():
			return ""
		case r := <-lost:
			return r
		case <-answered:
			lastAnswer = time.Now()
		case <-tick.C:
			if since := time.Since(lastAnswer); since > timeout {
				return fmt.Sprintf("no heartbeat answer for %s", since.Round(time.Millisecond))
			}
			if r := send(); r != "" {
				return r
			}
		}
	}
}
