package ha

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/etcdtest"
)

// Idle keep-alive connections of the S3 driver's client (one per endpoint
// for the process's life) are not leaks.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// store is every method both implementations have: the one shape the
// JobManager's small interfaces are cut from.
type store interface {
	IsLeader() bool
	Epoch() int64
	PutJobGraph(ctx context.Context, g JobGraphRecord) error
	JobGraph(ctx context.Context, jobID string) (JobGraphRecord, bool, error)
	JobIDs(ctx context.Context) ([]string, error)
	RemoveJob(ctx context.Context, jobID string) error
	NextCheckpointID(ctx context.Context, jobID string) (int64, error)
	CheckpointIDCounter(ctx context.Context, jobID string) (int64, error)
	SetCheckpointIDCounter(ctx context.Context, jobID string, next int64) error
	SetJobAttempt(ctx context.Context, jobID string, attempt int) error
	JobAttempt(ctx context.Context, jobID string) (int, error)
	AddCompletedCheckpoint(ctx context.Context, jobID string, cp CompletedCheckpoint) error
	RemoveCompletedCheckpoint(ctx context.Context, jobID string, checkpointID int64) error
	CompletedCheckpoints(ctx context.Context, jobID string) ([]CompletedCheckpoint, error)
	PutJobResult(ctx context.Context, jobID string, r JobResult) error
	JobResult(ctx context.Context, jobID string) (JobResult, bool, error)
	JobResults(ctx context.Context) ([]JobResult, error)
}

var (
	_ store = (*Standalone)(nil)
	_ store = (*Etcd)(nil)
)

// forEachStore runs f on a Standalone and on a leading Etcd store of its
// own cluster, so that both keep the same invariants with the same errors.
func forEachStore(t *testing.T, f func(t *testing.T, s store)) {
	t.Run("standalone", func(t *testing.T) { f(t, NewStandalone()) })
	t.Run("etcd", func(t *testing.T) {
		srv := etcdtest.Start(t)
		e := newTestEtcd(t, srv, "c1", t.TempDir(), "10.0.0.1:6123", 5*time.Second)
		lead(t, e)
		f(t, e)
	})
}

func newTestEtcd(t *testing.T, srv *etcdtest.Server, cluster, storageDir, address string, ttl time.Duration) *Etcd {
	t.Helper()
	e, err := NewEtcd(EtcdConfig{Endpoints: srv.Endpoints(), ClusterID: cluster, StorageDir: storageDir, LeaseTTL: ttl, Address: address, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lead starts a session and campaigns until e leads; it returns the epoch
// and the session's lost channel.
func lead(t *testing.T, e *Etcd) (int64, <-chan struct{}) {
	t.Helper()
	ctx := testCtx(t)
	lost, err := e.StartSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.Epoch() != epoch || !e.IsLeader() {
		t.Fatalf("after Campaign: Epoch %d, IsLeader %v; want %d, true", e.Epoch(), e.IsLeader(), epoch)
	}
	return epoch, lost
}

// leaderKey returns the election key e won and its lease, as etcd has it.
func leaderKey(t *testing.T, c *clientv3.Client, e *Etcd) (string, clientv3.LeaseID, int64) {
	t.Helper()
	e.mu.Lock()
	key := e.sess.key
	e.mu.Unlock()
	resp, err := c.Get(testCtx(t), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader key %s: %v, %v", key, resp, err)
	}
	return key, clientv3.LeaseID(resp.Kvs[0].Lease), resp.Kvs[0].CreateRevision
}

// waitClosed waits for c to close, failing the test after a minute.
func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatalf("%s: not within a minute", what)
	}
}

// dump returns every key of cluster under /weir/ but the election's, with
// its value and mod revision: what a write would change.
func dump(t *testing.T, c *clientv3.Client, cluster string) map[string]string {
	t.Helper()
	resp, err := c.Get(testCtx(t), "/weir/"+cluster+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), "/weir/"+cluster+"/leader/") {
			m[string(kv.Key)] = fmt.Sprintf("%q@%d", kv.Value, kv.ModRevision)
		}
	}
	return m
}

// files lists the files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var fs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			fs = append(fs, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestEtcdElection(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	dir := t.TempDir()
	a := newTestEtcd(t, srv, "c", dir, "10.0.0.1:6123", 5*time.Second)
	b := newTestEtcd(t, srv, "c", dir, "10.0.0.2:6123", 5*time.Second)
	obs := newTestEtcd(t, srv, "c", "", "", 0) // a TaskManager or the CLI
	ctx := testCtx(t)

	octx, stopObserving := context.WithCancel(ctx)
	observed := obs.Observe(octx)
	next := func() ObservedLeader {
		t.Helper()
		select {
		case l, ok := <-observed:
			if !ok {
				t.Fatal("Observe's channel closed")
			}
			return l
		case <-time.After(time.Minute):
			t.Fatal("Observe reported nothing within a minute")
		}
		return ObservedLeader{}
	}
	if l := next(); l.Address != "" || l.Epoch != 0 || l.Revision == 0 {
		t.Fatalf("first observation before any campaign: %+v", l)
	}
	if a.IsLeader() || a.Epoch() != 0 {
		t.Fatal("a leads before campaigning")
	}
	if _, err := a.Campaign(ctx); err == nil || err.Error() != "ha: campaign: no etcd session (StartSession first)" {
		t.Fatalf("Campaign without a session: %v", err)
	}
	if _, err := obs.StartSession(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.Campaign(ctx); err == nil || err.Error() != "ha: campaign: this store has no JobManager address: it only observes" {
		t.Fatalf("an observer campaigned: %v", err)
	}

	epochA, lostA := lead(t, a)
	_, _, created := leaderKey(t, c, a)
	if epochA != created {
		t.Fatalf("epoch %d is not the leader key's create revision %d", epochA, created)
	}
	if l := next(); l.Address != "10.0.0.1:6123" || l.Epoch != epochA {
		t.Fatalf("observed %+v, want a at epoch %d", l, epochA)
	}
	if _, err := a.StartSession(ctx); err == nil || !strings.Contains(err.Error(), "a session is open already") {
		t.Fatalf("a second session: %v", err)
	}
	if again, err := a.Campaign(ctx); err != nil || again != epochA {
		t.Fatalf("Campaign while leading = %d, %v; want %d", again, err, epochA)
	}

	// b campaigns and waits: its key is in the election, a still leads.
	if _, err := b.StartSession(ctx); err != nil {
		t.Fatal(err)
	}
	elected := make(chan int64, 1)
	go func() {
		epoch, err := b.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		elected <- epoch
	}()
	for {
		resp, err := c.Get(ctx, "/weir/c/leader/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b.IsLeader() || !a.IsLeader() {
		t.Fatalf("with both in the election: a leads %v, b leads %v", a.IsLeader(), b.IsLeader())
	}
	select {
	case <-elected:
		t.Fatal("b was elected while a leads")
	default:
	}
	if l, err := b.Leader(ctx); err != nil || l.Address != "10.0.0.1:6123" || l.Epoch != epochA {
		t.Fatalf("b reads the leader %+v, %v", l, err)
	}
	cs, err := obs.Contenders(ctx)
	if err != nil || len(cs) != 2 || cs[0] != (Contender{"10.0.0.1:6123", epochA, true}) || cs[1].Address != "10.0.0.2:6123" || cs[1].Leader || cs[1].Revision <= epochA {
		t.Fatalf("Contenders = %+v, %v", cs, err)
	}

	// a resigns: b takes over at a greater epoch, without waiting for a TTL.
	if err := a.CloseSession(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, lostA, "a's session ends with CloseSession")
	if a.IsLeader() {
		t.Fatal("a leads after CloseSession")
	}
	var epochB int64
	select {
	case epochB = <-elected:
	case <-time.After(time.Minute):
		t.Fatal("b not elected within a minute of a's resignation")
	}
	if _, _, created := leaderKey(t, c, b); epochB != created || epochB <= epochA {
		t.Fatalf("b's epoch %d: its key was created at %d, a's epoch was %d", epochB, created, epochA)
	}
	if l := next(); l.Address != "10.0.0.2:6123" || l.Epoch != epochB {
		t.Fatalf("observed %+v, want b at epoch %d", l, epochB)
	}
	stopObserving()
	for range observed { // closed when its context ends
	}

	// Closing the leader revokes its lease: the election is empty.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err := obs.Leader(ctx); err != nil || l.Address != "" || l.Epoch != 0 {
		t.Fatalf("leader after the last one closed: %+v, %v", l, err)
	}
	if ch := b.Observe(ctx); !isDone(chanDone(ch)) {
		t.Fatal("Observe on a closed store returned an open channel")
	}
}

// chanDone returns a channel closed once ch is drained and closed.
func chanDone(ch <-chan ObservedLeader) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	return done
}

// staleWrites are the writes a JobManager makes, each with the error it
// must get once its leadership is over.
var staleWrites = []struct {
	name  string
	write func(ctx context.Context, s store) error
	op    string
}{
	{"PutJobGraph", func(ctx context.Context, s store) error {
		return s.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Name: "stale", Spec: []byte("name: stale")})
	}, "put job graph of job j"},
	{"AddCompletedCheckpoint", func(ctx context.Context, s store) error {
		return s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 50, Location: "/stale"})
	}, "add completed checkpoint 50 of job j"},
	{"RemoveCompletedCheckpoint", func(ctx context.Context, s store) error {
		return s.RemoveCompletedCheckpoint(ctx, "j", 7)
	}, "remove completed checkpoint 7 of job j"},
	{"SetCheckpointIDCounter", func(ctx context.Context, s store) error {
		return s.SetCheckpointIDCounter(ctx, "j", 100)
	}, "set checkpoint id counter of job j to 100"},
	{"NextCheckpointID", func(ctx context.Context, s store) error {
		_, err := s.NextCheckpointID(ctx, "j")
		return err
	}, "next checkpoint id of job j"},
	{"SetJobAttempt", func(ctx context.Context, s store) error {
		return s.SetJobAttempt(ctx, "j", 9)
	}, "set attempt of job j to 9"},
	{"PutJobResult", func(ctx context.Context, s store) error {
		return s.PutJobResult(ctx, "j", JobResult{State: JobCanceled})
	}, "put result of job j"},
	{"RemoveJob", func(ctx context.Context, s store) error {
		return s.RemoveJob(ctx, "j")
	}, "remove job j"},
}

// seed gives job j a graph, a counter, an attempt and checkpoint 7.
func seed(t *testing.T, s store) {
	t.Helper()
	ctx := testCtx(t)
	if err := s.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Name: "good", Spec: []byte("name: good")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCheckpointIDCounter(ctx, "j", 8); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobAttempt(ctx, "j", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 7, Location: "/good"}); err != nil {
		t.Fatal(err)
	}
}

// A leader that has not noticed that its leadership ended (paused while
// its lease expired: here its election key is deleted behind its back)
// while a successor leads has each of its writes refused by etcd, and
// none of them changes anything.
func TestEtcdStaleLeaderWritesAreRefusedByEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	dir := t.TempDir()
	a := newTestEtcd(t, srv, "c", dir, "10.0.0.1:6123", 5*time.Second)
	b := newTestEtcd(t, srv, "c", dir, "10.0.0.2:6123", 5*time.Second)
	ctx := testCtx(t)
	lead(t, b)
	seed(t, b)
	if err := b.CloseSession(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range staleWrites {
		t.Run(w.name, func(t *testing.T) {
			epochA, lostA := lead(t, a)
			key, _, _ := leaderKey(t, c, a)
			if _, err := c.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			epochB, _ := lead(t, b)
			if epochB <= epochA {
				t.Fatalf("successor's epoch %d is not above %d", epochB, epochA)
			}
			if !a.IsLeader() {
				t.Fatal("the test needs a to believe it still leads")
			}
			before, beforeFiles := dump(t, c, "c"), files(t, dir)

			err := w.write(ctx, a)
			want := fmt.Sprintf("ha: %s refused: this JobManager's leadership at epoch %d has ended", w.op, epochA)
			var nl *NotLeaderError
			if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.Epoch != epochA || err.Error() != want {
				t.Fatalf("stale %s: %v, want %s", w.name, err, want)
			}
			if a.IsLeader() || a.Epoch() != 0 {
				t.Fatal("a refused write did not end a's leadership")
			}
			if isDone(lostA) {
				t.Fatal("a refused write ended the session: the shell closes it")
			}
			// Refused at once from now on, without asking etcd.
			if err := w.write(ctx, a); !errors.Is(err, ErrNotLeader) || err.Error() != want {
				t.Fatalf("second stale %s: %v", w.name, err)
			}
			if after := dump(t, c, "c"); !reflect.DeepEqual(after, before) {
				t.Fatalf("a stale %s changed etcd:\nbefore %v\nafter  %v", w.name, before, after)
			}
			if after := files(t, dir); !slices.Equal(after, beforeFiles) {
				t.Fatalf("a stale %s changed the storage directory: %v, was %v", w.name, after, beforeFiles)
			}
			// The successor's writes go through.
			if _, err := b.NextCheckpointID(ctx, "other"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Campaign(ctx); err == nil || !strings.Contains(err.Error(), "was stopped: close it and start a new one") {
				t.Fatalf("campaigning again on a session whose leadership ended: %v", err)
			}
			for _, s := range []*Etcd{a, b} {
				if err := s.CloseSession(ctx); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	g, ok, err := b.JobGraph(ctx, "j")
	if err != nil || !ok || g.Name != "good" {
		t.Fatalf("job graph after the stale writes: %+v, %v, %v", g, ok, err)
	}
}

// A leader whose lease is revoked (or expires) learns it from its lost
// channel, and every write is refused from then on.
func TestEtcdRevokedLeaseEndsLeadership(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	dir := t.TempDir()
	a := newTestEtcd(t, srv, "c", dir, "10.0.0.1:6123", 5*time.Second)
	b := newTestEtcd(t, srv, "c", dir, "10.0.0.2:6123", 5*time.Second)
	ctx := testCtx(t)
	epochA, lostA := lead(t, a)
	seed(t, a)
	_, lease, _ := leaderKey(t, c, a)
	if _, err := c.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, lostA, "lost after the lease was revoked")
	if a.IsLeader() || a.Epoch() != 0 {
		t.Fatal("a leads after its session was lost")
	}
	epochB, _ := lead(t, b)
	if epochB <= epochA {
		t.Fatalf("successor's epoch %d is not above %d", epochB, epochA)
	}
	before, beforeFiles := dump(t, c, "c"), files(t, dir)
	for _, w := range staleWrites {
		err := w.write(ctx, a)
		want := fmt.Sprintf("ha: %s refused: this JobManager's leadership at epoch %d has ended", w.op, epochA)
		if !errors.Is(err, ErrNotLeader) || err.Error() != want {
			t.Errorf("%s after the session was lost: %v, want %s", w.name, err, want)
		}
	}
	if after := dump(t, c, "c"); !reflect.DeepEqual(after, before) {
		t.Fatalf("a lost leader changed etcd:\nbefore %v\nafter  %v", before, after)
	}
	if after := files(t, dir); !slices.Equal(after, beforeFiles) {
		t.Fatalf("a lost leader changed the storage directory: %v, was %v", after, beforeFiles)
	}
	if _, err := a.Campaign(ctx); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("Campaign on a lost session: %v", err)
	}
	// A store that never led names no epoch.
	fresh := newTestEtcd(t, srv, "c", dir, "10.0.0.3:6123", 5*time.Second)
	if err := fresh.RemoveJob(ctx, "j"); err == nil || err.Error() != "ha: remove job j refused: this JobManager is not the leader" {
		t.Fatalf("RemoveJob of a store that never led: %v", err)
	}
}

// Checkpoint ids stay unique and strictly increasing across five leader
// changes, whichever way a leader goes (resigns, loses its lease, or
// turns into a zombie that keeps trying), with several callers per leader.
func TestEtcdCheckpointIDsAcrossLeaderChanges(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	dir := t.TempDir()
	ctx := testCtx(t)
	var stores []*Etcd
	for i := range 3 {
		stores = append(stores, newTestEtcd(t, srv, "c", dir, fmt.Sprintf("10.0.0.%d:6123", i+1), 5*time.Second))
	}
	var all []int64
	var lastEpoch int64
	var zombie *Etcd
	for round := range 6 { // 6 leaders: 5 changes
		l := stores[round%3]
		epoch, lost := lead(t, l)
		if epoch <= lastEpoch {
			t.Fatalf("round %d: epoch %d not above %d", round, epoch, lastEpoch)
		}
		lastEpoch = epoch
		if zombie != nil { // keeps trying while the new leader hands out ids
			if _, err := zombie.NextCheckpointID(ctx, "j"); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("round %d: the zombie got an id: %v", round, err)
			}
			if err := zombie.CloseSession(ctx); err != nil {
				t.Fatal(err)
			}
			zombie = nil
		}
		var mu sync.Mutex
		var ids []int64
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for range 4 {
					id, err := l.NextCheckpointID(ctx, "j")
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for i, id := range ids {
			if (i > 0 && id == ids[i-1]) || (len(all) > 0 && id <= all[len(all)-1]) {
				t.Fatalf("round %d: ids %v after %v", round, ids, all)
			}
		}
		all = append(all, ids...)
		if err := l.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: ids[len(ids)-1], Location: fmt.Sprint("/chk-", ids[len(ids)-1])}); err != nil {
			t.Fatal(err)
		}
		if round == 2 { // a restore from a savepoint moves the counter on
			if err := l.SetCheckpointIDCounter(ctx, "j", ids[len(ids)-1]+10); err != nil {
				t.Fatal(err)
			}
		}
		switch round % 3 {
		case 0:
			if err := l.CloseSession(ctx); err != nil {
				t.Fatal(err)
			}
		case 1:
			_, lease, _ := leaderKey(t, c, l)
			if _, err := c.Revoke(ctx, lease); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, lost, "lost after the lease was revoked")
		case 2:
			key, _, _ := leaderKey(t, c, l)
			if _, err := c.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			zombie = l
		}
	}
	if len(all) != 6*12 {
		t.Fatalf("%d ids handed out, want %d", len(all), 6*12)
	}
	// The counter skipped ids below the one set in round 2 only.
	if all[3*12] != all[3*12-1]+10 {
		t.Fatalf("first id after SetCheckpointIDCounter = %d, want %d", all[3*12], all[3*12-1]+10)
	}
	cps, err := stores[0].CompletedCheckpoints(ctx, "j")
	if err != nil || len(cps) != 6 {
		t.Fatalf("completed checkpoints %+v, %v", cps, err)
	}
}

// With etcd gone for longer than the lease TTL, the session is lost:
// the shell is told, and the store stops leading.
func TestEtcdSessionLostWhenEtcdIsDownLongerThanTTL(t *testing.T) {
	srv := etcdtest.Start(t)
	a := newTestEtcd(t, srv, "c", t.TempDir(), "10.0.0.1:6123", 2*time.Second)
	epoch, lost := lead(t, a)
	srv.Kill()
	waitClosed(t, lost, "lost with etcd down")
	if a.IsLeader() || a.Epoch() != 0 {
		t.Fatal("a leads with its session lost")
	}
	srv.Restart()
	ctx := testCtx(t)
	if err := a.PutJobResult(ctx, "j", JobResult{State: JobFinished}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write after the session was lost: %v", err)
	}
	// A new session leads again, above the old epoch (once the old lease,
	// renewed by etcd's restart, has expired).
	again, _ := lead(t, a)
	if again <= epoch {
		t.Fatalf("epoch after re-election %d, before %d", again, epoch)
	}
}

// An etcd restart shorter than the lease TTL costs nothing: the session
// stays, the store still leads at its epoch and writes.
func TestEtcdSessionSurvivesEtcdRestartWithinTTL(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	// The TTL leaves room for a restart and a reconnect on a loaded machine.
	a := newTestEtcd(t, srv, "c", t.TempDir(), "10.0.0.1:6123", 10*time.Second)
	epoch, lost := lead(t, a)
	_, lease, _ := leaderKey(t, c, a)
	srv.Kill()
	srv.Restart()
	ctx := testCtx(t)
	if err := a.PutJobResult(ctx, "j", JobResult{State: JobFinished}); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
	// Wait for a keepalive after the restart (the lease's TTL goes up):
	// from then on the client's view of the lease is fresh.
	lowest := int64(1 << 62)
	for {
		resp, err := c.TimeToLive(ctx, lease)
		if err != nil {
			t.Fatal(err)
		}
		if resp.TTL <= 0 {
			t.Fatalf("lease %x expired", lease)
		}
		if resp.TTL > lowest {
			break
		}
		lowest = min(lowest, resp.TTL)
		time.Sleep(100 * time.Millisecond)
	}
	if isDone(lost) || a.Epoch() != epoch {
		t.Fatalf("after an etcd restart within the TTL: lost %v, epoch %d (was %d)", isDone(lost), a.Epoch(), epoch)
	}
	if _, err := a.NextCheckpointID(ctx, "j"); err != nil {
		t.Fatal(err)
	}
}

// Clusters sharing one etcd and one storage directory see nothing of each
// other, also when one id is a prefix of the other.
func TestEtcdClusterIDsIsolate(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	a := newTestEtcd(t, srv, "a", dir, "10.0.0.1:6123", 5*time.Second)
	ab := newTestEtcd(t, srv, "ab", dir, "10.0.0.2:6123", 5*time.Second)
	ctx := testCtx(t)
	lead(t, a)
	lead(t, ab) // its own election: both lead
	for _, s := range []*Etcd{a, ab} {
		if err := s.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Name: s.cfg.ClusterID, Spec: []byte("name: " + s.cfg.ClusterID)}); err != nil {
			t.Fatal(err)
		}
		if id, err := s.NextCheckpointID(ctx, "j"); err != nil || id != 1 {
			t.Fatalf("cluster %s: first id %d, %v", s.cfg.ClusterID, id, err)
		}
	}
	if err := a.PutJobResult(ctx, "j", JobResult{State: JobFinished}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 1, Location: "/a"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Etcd{a, ab} {
		g, ok, err := s.JobGraph(ctx, "j")
		if err != nil || !ok || string(g.Spec) != "name: "+s.cfg.ClusterID {
			t.Fatalf("cluster %s: job graph %+v, %v, %v", s.cfg.ClusterID, g, ok, err)
		}
		l, err := s.Leader(ctx)
		if err != nil || l.Address != s.cfg.Address {
			t.Fatalf("cluster %s: leader %+v, %v", s.cfg.ClusterID, l, err)
		}
	}
	if rs, _ := ab.JobResults(ctx); len(rs) != 0 {
		t.Fatalf("cluster ab sees results %+v", rs)
	}
	if cps, _ := ab.CompletedCheckpoints(ctx, "j"); len(cps) != 0 {
		t.Fatalf("cluster ab sees checkpoints %+v", cps)
	}
	if err := a.RemoveJob(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := ab.JobIDs(ctx); !slices.Equal(ids, []string{"j"}) {
		t.Fatalf("cluster ab's jobs after a's RemoveJob: %v", ids)
	}
	fs := files(t, dir)
	if len(fs) != 1 || !strings.HasPrefix(fs[0], "ab/jobgraphs/j-") {
		t.Fatalf("storage directory after a's RemoveJob: %v", fs)
	}
}

// Job files live as blobs in the storage directory: replaced and removed
// with their pointers, and checked when read.
func TestEtcdJobGraphBlobs(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	dir := t.TempDir()
	a := newTestEtcd(t, srv, "c", dir, "10.0.0.1:6123", 5*time.Second)
	ctx := testCtx(t)
	lead(t, a)
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Spec: []byte("version: 1")}); err != nil {
		t.Fatal(err)
	}
	first := files(t, dir)
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Spec: []byte("version: 2")}); err != nil {
		t.Fatal(err)
	}
	second := files(t, dir)
	if len(first) != 1 || len(second) != 1 || first[0] == second[0] || !strings.HasPrefix(second[0], "c/jobgraphs/j-") {
		t.Fatalf("blobs: %v, then %v", first, second)
	}
	resp, err := c.Get(ctx, "/weir/c/jobgraphs/j")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"blob":"`+filepath.Join(dir, second[0])+`"`) {
		t.Fatalf("pointer %v, %v", resp, err)
	}
	blob := filepath.Join(dir, second[0])

	if err := os.WriteFile(blob, []byte("version: 3"), 0o644); err != nil { // same size
		t.Fatal(err)
	}
	_, _, err = a.JobGraph(ctx, "j")
	want := fmt.Sprintf("ha: read job graph of job j: job file %s (etcd key /weir/c/jobgraphs/j): corrupt HA data: its 10 bytes do not match the size and SHA-256 of its pointer", blob)
	if !errors.Is(err, ErrCorrupt) || err.Error() != want {
		t.Fatalf("tampered blob: %v\nwant %s", err, want)
	}
	if err := os.WriteFile(blob, []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err = a.JobGraph(ctx, "j"); !errors.Is(err, ErrCorrupt) || !strings.HasSuffix(err.Error(), "corrupt HA data: it is 1 bytes, its pointer says 10") {
		t.Fatalf("truncated blob: %v", err)
	}
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	if _, _, err = a.JobGraph(ctx, "j"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), blob) {
		t.Fatalf("missing blob: %v", err)
	}
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Spec: []byte("version: 4")}); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveJob(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if fs := files(t, dir); len(fs) != 0 {
		t.Fatalf("blobs after RemoveJob: %v", fs)
	}

	for _, bad := range []struct {
		g    JobGraphRecord
		want string
	}{
		{JobGraphRecord{JobID: "../x"}, `ha: put job graph of job ../x: job id "../x" is not 1 to 128 letters, digits, '.', '_' or '-' starting with a letter or digit`},
		{JobGraphRecord{JobID: "a/b"}, `ha: put job graph of job a/b: job id "a/b" is not 1 to 128 letters, digits, '.', '_' or '-' starting with a letter or digit`},
		{JobGraphRecord{JobID: "big", Spec: make([]byte, config.MaxJobFileSize+1)}, "ha: put job graph of job big: the job file is 1048577 bytes: the limit is 1048576 bytes"},
	} {
		if err := a.PutJobGraph(ctx, bad.g); err == nil || err.Error() != bad.want {
			t.Errorf("PutJobGraph(%q): %v\nwant %s", bad.g.JobID, err, bad.want)
		}
	}
	if _, err := a.NextCheckpointID(ctx, strings.Repeat("x", 129)); err == nil || !strings.Contains(err.Error(), "is not 1 to 128 letters") {
		t.Fatalf("a 129-byte job id: %v", err)
	}
	obs := newTestEtcd(t, srv, "c", "", "", 0)
	if err := obs.PutJobGraph(ctx, JobGraphRecord{JobID: "j"}); err == nil || err.Error() != "ha: put job graph of job j: no high-availability.storageDir: this store only observes" {
		t.Fatalf("PutJobGraph of an observer: %v", err)
	}
}

// Garbage in etcd is an error naming the key, never a panic.
func TestEtcdCorruptValues(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client()
	a := newTestEtcd(t, srv, "c", t.TempDir(), "10.0.0.1:6123", 5*time.Second)
	ctx := testCtx(t)
	lead(t, a)
	put := func(k, v string) {
		t.Helper()
		if _, err := c.Put(ctx, "/weir/c/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v\nwant it to contain %s", what, err, want)
		}
	}
	garbage := "\xff\xfe\x00garbage"
	put("jobgraphs/j", garbage)
	_, _, err := a.JobGraph(ctx, "j")
	check("JobGraph", err, `ha: read job graph of job j: etcd key /weir/c/jobgraphs/j holds a corrupt value: not a job graph pointer: `)
	put("jobgraphs/j", `{"blob":"/x","size":-1,"sha256":"00"}`)
	_, _, err = a.JobGraph(ctx, "j")
	check("JobGraph", err, `etcd key /weir/c/jobgraphs/j holds a corrupt value: a job graph pointer needs a blob, a size of at most 1048576 bytes and a SHA-256 (value "{\"blob\":\"/x\",\"size\":-1,\"sha256\":\"00\"}")`)
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Spec: []byte("x")}); err != nil { // replaces it
		t.Fatalf("replacing a corrupt pointer: %v", err)
	}
	put("jobgraphs/j", garbage)
	if err := a.RemoveJob(ctx, "j"); err != nil { // removes it
		t.Fatalf("removing a corrupt pointer: %v", err)
	}

	for _, v := range []string{garbage, "0", "-3", "1.5", "99999999999999999999"} {
		put("jobs/j/counter", v)
		want := fmt.Sprintf("etcd key /weir/c/jobs/j/counter holds a corrupt value: not a decimal integer of at least 1 (value %q)", v)
		_, err := a.NextCheckpointID(ctx, "j")
		check("NextCheckpointID", err, "ha: next checkpoint id of job j: "+want)
		_, err = a.CheckpointIDCounter(ctx, "j")
		check("CheckpointIDCounter", err, "ha: read checkpoint id counter of job j: "+want)
		check("SetCheckpointIDCounter", a.SetCheckpointIDCounter(ctx, "j", 5), "ha: set checkpoint id counter of job j to 5: "+want)
	}
	put("jobs/j/attempt", "x")
	check("SetJobAttempt", a.SetJobAttempt(ctx, "j", 1), `ha: set attempt of job j to 1: etcd key /weir/c/jobs/j/attempt holds a corrupt value`)
	_, err = a.JobAttempt(ctx, "j")
	check("JobAttempt", err, `ha: read attempt of job j: etcd key /weir/c/jobs/j/attempt holds a corrupt value`)
	put("jobs/j/last-added", "x")
	check("AddCompletedCheckpoint", a.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 1}),
		`ha: add completed checkpoint 1 of job j: etcd key /weir/c/jobs/j/last-added holds a corrupt value: not a decimal integer of at least 0 (value "x")`)
	put("jobs/j/checkpoints/0000000000000000001", garbage)
	_, err = a.CompletedCheckpoints(ctx, "j")
	check("CompletedCheckpoints", err, "ha: read completed checkpoints of job j: etcd key /weir/c/jobs/j/checkpoints/0000000000000000001 holds a corrupt value: not a checkpoint pointer")
	put("jobs/j/checkpoints/0000000000000000001", `{"location":"/c"}`)
	put("jobs/j/checkpoints/1x", `{"location":"/c"}`)
	if _, err = a.CompletedCheckpoints(ctx, "j"); err == nil || err.Error() != "ha: read completed checkpoints of job j: etcd key /weir/c/jobs/j/checkpoints/1x does not end in a 19-digit checkpoint id" {
		t.Errorf("CompletedCheckpoints with a bad key: %v", err)
	}
	put("results/j", `{"state":"DONE"}`)
	_, _, err = a.JobResult(ctx, "j")
	check("JobResult", err, `ha: read result of job j: etcd key /weir/c/results/j holds a corrupt value: state "DONE" is not FINISHED, FAILED or CANCELED`)
	_, err = a.JobResults(ctx)
	check("JobResults", err, `ha: read job results: etcd key /weir/c/results/j holds a corrupt value`)
	check("PutJobResult", a.PutJobResult(ctx, "j", JobResult{State: JobFinished}), `ha: put result of job j: etcd key /weir/c/results/j holds a corrupt value`)
	put("results/j", strings.Repeat("x", 1<<20))
	_, _, err = a.JobResult(ctx, "j")
	check("JobResult", err, `(value "`+strings.Repeat("x", 64)+`"... (1048576 bytes))`)
	if err != nil && len(err.Error()) > 1024 {
		t.Errorf("the error of a 1 MiB value is %d bytes", len(err.Error()))
	}

	if err := a.CloseSession(ctx); err != nil { // leader/0 is then the first key
		t.Fatal(err)
	}
	put("leader/0", "\x00not an address")
	_, err = a.Leader(ctx)
	check("Leader", err, `ha: read the leader: etcd key /weir/c/leader/0 holds a corrupt value: not a host:port address (value "\x00not an address")`)
	_, err = a.Contenders(ctx)
	check("Contenders", err, `ha: list the JobManagers: etcd key /weir/c/leader/0 holds a corrupt value: not a host:port address`)
}

func TestNewEtcdRefusesBadConfig(t *testing.T) {
	ok := EtcdConfig{Endpoints: []string{"127.0.0.1:1"}, ClusterID: "c", StorageDir: t.TempDir(), Address: "h:1"}
	for _, tc := range []struct {
		change func(*EtcdConfig)
		want   string
	}{
		{func(c *EtcdConfig) { c.Endpoints = nil }, "ha: etcd: no endpoints (high-availability.etcd.endpoints)"},
		{func(c *EtcdConfig) { c.ClusterID = "a/b" }, `ha: etcd: cluster id "a/b" (high-availability.cluster-id) is not 1 to 128 letters, digits, '.', '_' or '-' starting with a letter or digit`},
		{func(c *EtcdConfig) { c.ClusterID = "" }, `ha: etcd: cluster id "" (high-availability.cluster-id) is not 1 to 128`},
		{func(c *EtcdConfig) { c.LeaseTTL = 500 * time.Millisecond }, "ha: etcd: lease TTL 500ms (high-availability.etcd.lease-ttl) is not between 1 s and 1 h"},
		{func(c *EtcdConfig) { c.Address = "nohost" }, `ha: etcd: this JobManager's address "nohost" is not host:port`},
		{func(c *EtcdConfig) { c.StorageDir = "" }, "ha: etcd: high-availability.storageDir is not set: a JobManager keeps the submitted job files there"},
		{func(c *EtcdConfig) { c.StorageDir = "hdfs:///ha" }, `ha: etcd: high-availability.storageDir "hdfs:///ha": unsupported storage scheme "hdfs"`},
	} {
		c := ok
		tc.change(&c)
		e, err := NewEtcd(c)
		if err == nil {
			_ = e.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewEtcd(%+v) = %v\nwant %s", c, err, tc.want)
		}
	}
}

func TestEtcdConfigFrom(t *testing.T) {
	cfg, _, err := config.FromMap(map[string]string{
		"high-availability.type": "etcd", "high-availability.etcd.endpoints": " h1:2379, http://h2:2379 ,",
		"high-availability.cluster-id": "prod", "high-availability.storageDir": "/ha", "high-availability.etcd.lease-ttl": "4 s",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := EtcdConfigFrom(cfg, "jm:6123", nil)
	want := EtcdConfig{Endpoints: []string{"h1:2379", "http://h2:2379"}, ClusterID: "prod", StorageDir: "/ha", LeaseTTL: 4 * time.Second, Address: "jm:6123"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("EtcdConfigFrom = %+v, %v\nwant %+v", got, err, want)
	}
	if _, err := EtcdConfigFrom(config.New(), "", nil); err == nil || err.Error() != "high-availability.etcd.endpoints is not set: high-availability.type etcd needs the etcd endpoints (host:port,...)" {
		t.Fatalf("no endpoints: %v", err)
	}
}
