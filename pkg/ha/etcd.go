package ha

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/snapshot"
)

// Etcd keeps the facts of package ha in etcd and elects the leader among
// the JobManagers of a cluster (high-availability.type: etcd). Its keys,
// under /weir/<cluster-id>/:
//
//	leader/<lease id>                    the election (concurrency.Election): a JobManager's RPC address;
//	                                     the key created first leads, and its create revision is the epoch
//	jobgraphs/<job>                      JSON pointer to the job file's blob: {name, fileName, blob, size, sha256}
//	jobs/<job>/counter                   the next unused checkpoint id, decimal
//	jobs/<job>/attempt                   the attempt of the job's current execution, decimal
//	jobs/<job>/checkpoints/<id, 19 digits>  JSON {location, savepoint}
//	jobs/<job>/last-added                the newest checkpoint id ever added, decimal
//	results/<job>                        JSON {name, state, error, endTime}
//
// etcd holds only these small pointers: the job files are blobs in
// high-availability.storageDir, at <storageDir>/<cluster-id>/jobgraphs/<job>-<random>,
// written with package snapshot's Store primitives (so any registered
// storage driver serves, file and s3 among them) and published before the
// pointer to them, so that a pointer never names a missing blob. A blob
// may be orphaned by a write whose outcome is unknown (a timeout); it is
// never deleted while a pointer may name it.
//
// # Leadership and fencing
//
// A JobManager's shell drives its leadership (see Leadership) with
// StartSession (a lease of high-availability.etcd.lease-ttl, kept alive;
// its lost channel closes when the lease expired, was revoked or could not
// be kept alive for the TTL), Campaign (blocks until this JobManager
// leads and returns the epoch), StopLeading (no I/O: from now on every
// write is refused) and CloseSession (revokes the lease: the election key
// goes with it and a standby takes over at once). Leader and Observe tell
// anyone (standbys, TaskManagers, the CLI) who leads, Contenders who
// stands by.
//
// Every write is one etcd transaction conditioned on leadership:
// If(CreateRevision(leader key) == epoch). The leader key is deleted with
// the lease, so once a successor may have been elected nothing a stale
// leader sends is applied, whatever its own clock or state believe. A
// refused write is a *NotLeaderError (errors.Is(err, ErrNotLeader)) naming
// the write, and ends this store's leadership at once: Epoch is 0 from
// then on. Reads are not fenced: a standby may look.
//
// Checkpoint ids, attempts and last-added only move forward across
// leaders: each is updated in the fenced transaction with a compare on the
// revision read before (a lost race with another caller is read and tried
// again), so two callers can never hand out one id.
//
// Etcd is safe for concurrent use. Its mutex guards the session and epoch
// only, and is never held while talking to etcd or storage.
type Etcd struct {
	cfg     EtcdConfig
	ttl     int // lease TTL in whole seconds, etcd's unit
	log     *zap.Logger
	client  *clientv3.Client
	prefix  string // /weir/<cluster-id>/
	blobDir string // <storageDir>/<cluster-id>/jobgraphs, "" without storageDir
	// handshakes records why TLS handshakes with etcd fail (etcd_tls.go);
	// nil without TLS.
	handshakes *handshakes

	ctx    context.Context // the store's life: ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // Observe goroutines

	mu     sync.Mutex
	sess   *etcdSession // the current session, nil when none
	busy   bool         // a StartSession or Campaign is talking to etcd
	closed bool
}

// etcdSession is one lease of this store and what it won. Its fields are
// guarded by Etcd.mu.
type etcdSession struct {
	s *concurrency.Session
	// key is the election key, epoch its create revision while this
	// JobManager leads (0 before Campaign returns and after
	// StopLeading or a refused write); elected keeps the epoch it led at,
	// for errors.
	key            string
	epoch, elected int64
}

// EtcdConfig configures an Etcd store: Flink's high-availability.* keys
// (EtcdConfigFrom reads them).
type EtcdConfig struct {
	// Endpoints of the etcd cluster: host:port, http://host:port or
	// https://host:port; not both http:// and https://.
	Endpoints []string
	// TLS, when set, encrypts the connections to etcd (host:port and
	// https:// endpoints; http:// ones are refused): RootCAs (nil: the
	// system roots) verify etcd's certificate and host name, and a
	// client certificate is presented if etcd asks. nil: plaintext,
	// unless the endpoints are https://, which verifies etcd against the
	// system roots. EtcdConfigFrom builds it from
	// high-availability.etcd.tls.*.
	TLS *tls.Config
	// ClusterID names the cluster: every key lives under
	// /weir/<ClusterID>/, so several clusters may share one etcd.
	ClusterID string
	// StorageDir is the directory or URI where the job files are
	// written (package snapshot resolves it; its driver must be
	// registered). Required for a JobManager (Address set).
	StorageDir string
	// LeaseTTL is the time to live of a session, rounded up to whole
	// seconds; 0 means 15 s.
	LeaseTTL time.Duration
	// Address is this JobManager's RPC address (host:port), the value of
	// its election key: what standbys, TaskManagers and the CLI are told.
	// "" for a process that only reads and observes (a TaskManager, the
	// CLI): it cannot campaign or write job graphs.
	Address string
	// Logger, nil for none.
	Logger *zap.Logger

	// tlsFiles are the files behind TLS, named in errors.
	tlsFiles security.Files
}

// EtcdConfigFrom reads the high-availability.* keys of cfg for a process
// whose RPC address is address ("" for one that only observes). With TLS
// to etcd it loads the files of high-availability.etcd.tls.*: a missing,
// unreadable or non-PEM file, or a key that does not match its
// certificate, is an error naming the key and the file.
func EtcdConfigFrom(cfg *config.Config, address string, log *zap.Logger) (EtcdConfig, error) {
	var eps []string
	for _, ep := range strings.Split(cfg.String(config.HighAvailabilityEtcdEndpoints), ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return EtcdConfig{}, fmt.Errorf("%s is not set: %s etcd needs the etcd endpoints (host:port,...)",
			config.HighAvailabilityEtcdEndpoints.Key, config.HighAvailabilityType.Key)
	}
	tlsCfg, files, err := etcdTLSFrom(cfg, eps, log)
	if err != nil {
		return EtcdConfig{}, err
	}
	if err := checkEndpoints(eps, tlsCfg != nil); err != nil {
		return EtcdConfig{}, err
	}
	return EtcdConfig{
		Endpoints:  eps,
		ClusterID:  cfg.String(config.HighAvailabilityClusterID),
		StorageDir: cfg.String(config.HighAvailabilityStorageDir),
		LeaseTTL:   cfg.Duration(config.HighAvailabilityEtcdLeaseTTL),
		Address:    address,
		Logger:     log,
		TLS:        tlsCfg,
		tlsFiles:   files,
	}, nil
}

// defaultLeaseTTL is high-availability.etcd.lease-ttl's default.
const defaultLeaseTTL = 15 * time.Second

// maxIDLength bounds cluster and job ids: they are parts of etcd keys and
// of blob names.
const maxIDLength = 128

// NewEtcd checks cfg and returns a store connected to etcd lazily: it does
// no I/O, and the first call that needs etcd waits for it within its
// context. Close it when done.
func NewEtcd(cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("ha: etcd: no endpoints (%s)", config.HighAvailabilityEtcdEndpoints.Key)
	}
	if err := checkEndpoints(cfg.Endpoints, cfg.TLS != nil); err != nil {
		return nil, err
	}
	if cfg.TLS == nil && endpointScheme(cfg.Endpoints[0]) == "https" {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if !validID(cfg.ClusterID) {
		return nil, fmt.Errorf("ha: etcd: cluster id %q (%s) is not 1 to %d letters, digits, '.', '_' or '-' starting with a letter or digit",
			cfg.ClusterID, config.HighAvailabilityClusterID.Key, maxIDLength)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = defaultLeaseTTL
	}
	if cfg.LeaseTTL < time.Second || cfg.LeaseTTL > time.Hour {
		return nil, fmt.Errorf("ha: etcd: lease TTL %s (%s) is not between 1 s and 1 h", cfg.LeaseTTL, config.HighAvailabilityEtcdLeaseTTL.Key)
	}
	if cfg.Address != "" {
		if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
			return nil, fmt.Errorf("ha: etcd: this JobManager's address %q is not host:port: %v", cfg.Address, err)
		}
		if cfg.StorageDir == "" {
			return nil, fmt.Errorf("ha: etcd: %s is not set: a JobManager keeps the submitted job files there", config.HighAvailabilityStorageDir.Key)
		}
	}
	e := &Etcd{cfg: cfg, ttl: int(math.Ceil(cfg.LeaseTTL.Seconds())), log: cfg.Logger, prefix: "/weir/" + cfg.ClusterID + "/"}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if cfg.StorageDir != "" {
		e.blobDir = strings.TrimRight(cfg.StorageDir, "/") + "/" + cfg.ClusterID + "/jobgraphs"
		if _, _, err := snapshot.ResolveStore(e.blobDir); err != nil {
			return nil, fmt.Errorf("ha: etcd: %s %q: %w", config.HighAvailabilityStorageDir.Key, cfg.StorageDir, err)
		}
	}
	dialOpts := []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		// gRPC's default reconnect backoff grows to 2 minutes: after an
		// etcd restart shorter than the lease TTL the session's keepalives
		// must resume before the TTL runs out, so reconnect at least every
		// second.
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 5 * time.Second,
	})}
	if cfg.TLS != nil {
		// The credentials etcd's client would make of cfg.TLS (gRPC's
		// TLS), recording each handshake's outcome. The client applies
		// DialOptions after its own, so these replace its.
		e.handshakes = &handshakes{files: cfg.tlsFiles, log: e.log, failed: map[string]error{}}
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(&recordingCreds{TransportCredentials: credentials.NewTLS(cfg.TLS), h: e.handshakes}))
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		TLS:       cfg.TLS,
		// A dead connection is found within 15 s also when no request
		// waits on it (a member that hangs).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               e.log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		DialOptions:          dialOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("ha: etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	e.client = client
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// Close ends the session (its lease revoked within 2 s if etcd answers, so
// that a standby takes over at once), stops the observers and closes the
// client.
func (e *Etcd) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := e.CloseSession(ctx)
	cancel()
	e.cancel()
	e.wg.Wait()
	if cerr := e.client.Close(); err == nil && cerr != nil && !errors.Is(cerr, context.Canceled) {
		err = fmt.Errorf("ha: close etcd client: %w", cerr)
	}
	return err
}

// ErrSessionLost is matched by the error of a Campaign whose session
// ended before it won.
var ErrSessionLost = errors.New("etcd session lost")

// StartSession grants a lease of the configured TTL and keeps it alive.
// lost closes when the session ends: its lease expired, was revoked, or
// could not be kept alive for the TTL (etcd unreachable), or
// CloseSession or Close ended it. A session that could not be granted
// (etcd unreachable until ctx ends) is an error; a new one may be started
// once the current one is lost.
func (e *Etcd) StartSession(ctx context.Context) (lost <-chan struct{}, err error) {
	if err := e.begin("start etcd session", true); err != nil {
		return nil, err
	}
	defer e.end()
	resp, err := e.client.Grant(ctx, int64(e.ttl))
	if err != nil {
		return nil, fmt.Errorf("ha: start etcd session: grant a lease of %d s: %w", e.ttl, e.explain(err))
	}
	// The session's keepalives live as long as the store (or until the
	// lease is lost), not as long as ctx.
	s, err := concurrency.NewSession(e.client, concurrency.WithLease(resp.ID), concurrency.WithTTL(e.ttl), concurrency.WithContext(e.ctx))
	if err != nil {
		e.revoke(resp.ID)
		return nil, fmt.Errorf("ha: start etcd session: keep lease %x alive: %w", resp.ID, e.explain(err))
	}
	e.mu.Lock()
	closed := e.closed
	if !closed {
		e.sess = &etcdSession{s: s}
	}
	e.mu.Unlock()
	if closed {
		s.Orphan()
		e.revoke(s.Lease())
		return nil, errors.New("ha: start etcd session: the store is closed")
	}
	e.log.Info("etcd session started", zap.String("lease", fmt.Sprintf("%x", s.Lease())), zap.Int("ttlSeconds", e.ttl))
	return s.Done(), nil
}

// begin marks a StartSession or Campaign in progress (one at a time), so
// that neither holds the mutex while it talks to etcd. A new session may
// only be started when there is no live one.
func (e *Etcd) begin(op string, newSession bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return fmt.Errorf("ha: %s: the store is closed", op)
	case e.busy:
		return fmt.Errorf("ha: %s: another session start or campaign is in progress", op)
	case newSession && e.sess != nil && !isDone(e.sess.s.Done()):
		return fmt.Errorf("ha: %s: a session is open already (lease %x)", op, e.sess.s.Lease())
	case !newSession && e.cfg.Address == "":
		return fmt.Errorf("ha: %s: this store has no JobManager address: it only observes", op)
	}
	e.busy = true
	return nil
}

func (e *Etcd) end() {
	e.mu.Lock()
	e.busy = false
	e.mu.Unlock()
}

// Campaign puts this JobManager's address in the election on the current
// session and blocks until it leads, ctx ends, or the session is lost
// (ErrSessionLost). It returns the epoch: the create revision of its
// election key, above the epoch of every earlier leader of the cluster.
// From then on the store's writes are fenced by that key. After an error
// the caller should close the session: its key may still stand in the
// election.
func (e *Etcd) Campaign(ctx context.Context) (epoch int64, err error) {
	const op = "campaign"
	if err := e.begin(op, false); err != nil {
		return 0, err
	}
	defer e.end()
	e.mu.Lock()
	cur := e.sess
	var leading, elected int64
	if cur != nil {
		leading, elected = cur.epoch, cur.elected
	}
	e.mu.Unlock()
	switch {
	case cur == nil:
		return 0, fmt.Errorf("ha: %s: no etcd session (StartSession first)", op)
	case isDone(cur.s.Done()):
		return 0, fmt.Errorf("ha: %s: %w", op, ErrSessionLost)
	case leading != 0:
		return leading, nil
	case elected != 0:
		// StopLeading is final for a session: its key may still stand,
		// and campaigning again would resume it.
		return 0, fmt.Errorf("ha: %s: this session's leadership at epoch %d was stopped: close it and start a new one", op, elected)
	}
	el := concurrency.NewElection(cur.s, e.electionPrefix())
	// The campaign ends with the session: a lost lease took its key.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cur.s.Ctx(), cancel)
	defer stop()
	if err := el.Campaign(cctx, e.cfg.Address); err != nil {
		if isDone(cur.s.Done()) {
			return 0, fmt.Errorf("ha: %s: %w", op, ErrSessionLost)
		}
		return 0, fmt.Errorf("ha: %s: %w", op, e.explain(err))
	}
	// Campaign returns once every older key is gone, also if the lease
	// expired meanwhile and took this one: check that it still stands.
	resp, err := e.client.Get(ctx, el.Key())
	if err != nil {
		return 0, fmt.Errorf("ha: %s: read election key %s: %w", op, el.Key(), e.explain(err))
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != el.Rev() {
		return 0, fmt.Errorf("ha: %s: election key %s is gone: %w", op, el.Key(), ErrSessionLost)
	}
	e.mu.Lock()
	ok := e.sess == cur && !isDone(cur.s.Done())
	if ok {
		cur.key, cur.epoch, cur.elected = el.Key(), el.Rev(), el.Rev()
	}
	e.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("ha: %s: %w", op, ErrSessionLost)
	}
	e.log.Info("leading", zap.Int64("epoch", el.Rev()), zap.String("key", el.Key()), zap.String("address", e.cfg.Address))
	return el.Rev(), nil
}

// StopLeading makes every write from now on fail with ErrNotLeader, at
// once and without I/O (what a shell does first when it learns that its
// leadership is over). The session stays until CloseSession.
func (e *Etcd) StopLeading() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess != nil {
		e.sess.epoch = 0
	}
}

// CloseSession stops leading and ends the session: the lease is revoked,
// with it the election key, so that a standby is elected at once rather
// than after the TTL. If etcd cannot be reached within ctx the lease
// expires by itself; the session is closed here all the same.
func (e *Etcd) CloseSession(ctx context.Context) error {
	e.mu.Lock()
	cur := e.sess
	e.sess = nil
	e.mu.Unlock()
	if cur == nil {
		return nil
	}
	cur.s.Orphan() // stops the keepalives: lost closes
	if _, err := e.client.Revoke(ctx, cur.s.Lease()); err != nil {
		return fmt.Errorf("ha: close etcd session: revoke lease %x (it expires by itself within %d s): %w", cur.s.Lease(), e.ttl, e.explain(err))
	}
	e.log.Info("etcd session closed", zap.String("lease", fmt.Sprintf("%x", cur.s.Lease())), zap.Int64("epoch", cur.elected))
	return nil
}

// revoke revokes a lease that no session keeps, in the background of a
// failure: best effort, bounded.
func (e *Etcd) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = e.client.Revoke(ctx, id)
}

// Epoch returns the epoch this JobManager leads at, 0 when it does not
// lead (no session, campaigning, session lost, StopLeading, or a write
// refused by etcd).
func (e *Etcd) Epoch() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess == nil || e.sess.epoch == 0 || isDone(e.sess.s.Done()) {
		return 0
	}
	return e.sess.epoch
}

// IsLeader reports whether this JobManager leads: Epoch() > 0.
func (e *Etcd) IsLeader() bool { return e.Epoch() > 0 }

// ObservedLeader is who leads the election at an etcd revision.
type ObservedLeader struct {
	// Address is the leader's RPC address, "" when no JobManager leads.
	Address string
	// Epoch is the leader key's create revision, 0 when none leads.
	Epoch int64
	// Revision is the etcd revision at which this was read.
	Revision int64
}

func (e *Etcd) electionPrefix() string { return e.prefix + "leader" }

// Leader reads who leads now.
func (e *Etcd) Leader(ctx context.Context) (ObservedLeader, error) {
	resp, err := e.client.Get(ctx, e.electionPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return ObservedLeader{}, fmt.Errorf("ha: read the leader: etcd: %w", e.explain(err))
	}
	l, err := leaderOf(resp)
	if err != nil {
		return ObservedLeader{}, fmt.Errorf("ha: read the leader: %w", err)
	}
	return l, nil
}

// Contender is a JobManager in the election: the leader, or a standby
// campaigning (one with a session that has not campaigned is not listed).
type Contender struct {
	Address string
	// Revision is its election key's create revision: the leader's
	// epoch, a standby's place in the queue.
	Revision int64
	Leader   bool
}

// Contenders lists the JobManagers in the election, the leader first, then
// the standbys in the order they will lead (for `weir jobmanagers`). A
// corrupt key is an error naming it.
func (e *Etcd) Contenders(ctx context.Context) ([]Contender, error) {
	resp, err := e.client.Get(ctx, e.electionPrefix()+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("ha: list the JobManagers: etcd: %w", e.explain(err))
	}
	cs := make([]Contender, 0, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		addr := string(kv.Value)
		if _, _, err := net.SplitHostPort(addr); err != nil || len(addr) > config.MaxPathLength {
			return nil, fmt.Errorf("ha: list the JobManagers: %w", corrupt(string(kv.Key), kv.Value, "not a host:port address"))
		}
		cs = append(cs, Contender{Address: addr, Revision: kv.CreateRevision, Leader: i == 0})
	}
	return cs, nil
}

func leaderOf(resp *clientv3.GetResponse) (ObservedLeader, error) {
	l := ObservedLeader{Revision: resp.Header.Revision}
	if len(resp.Kvs) == 0 {
		return l, nil
	}
	kv := resp.Kvs[0]
	addr := string(kv.Value)
	if _, _, err := net.SplitHostPort(addr); err != nil || len(addr) > config.MaxPathLength {
		return l, corrupt(string(kv.Key), kv.Value, "not a host:port address")
	}
	l.Address, l.Epoch = addr, kv.CreateRevision
	return l, nil
}

// Observe reports who leads: first the leader now, then each change (a
// receiver that falls behind gets the latest one). The channel is closed
// when ctx ends or the store is closed. While etcd cannot be reached the
// last value stands; a corrupt leader key is logged and skipped.
func (e *Etcd) Observe(ctx context.Context) <-chan ObservedLeader {
	ch := make(chan ObservedLeader)
	e.mu.Lock()
	closed := e.closed
	if !closed {
		e.wg.Add(1)
	}
	e.mu.Unlock()
	if closed {
		close(ch)
		return ch
	}
	octx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.ctx, cancel)
	go func() {
		defer e.wg.Done()
		defer close(ch)
		defer stop()
		defer cancel()
		e.observe(octx, ch)
	}()
	return ch
}

func (e *Etcd) observe(ctx context.Context, ch chan<- ObservedLeader) {
	prefix := e.electionPrefix() + "/"
	var last ObservedLeader
	sent := false
	for ctx.Err() == nil {
		resp, err := e.client.Get(ctx, prefix, clientv3.WithFirstCreate()...)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("observe the leader: read", zap.Error(err))
				sleep(ctx, 500*time.Millisecond)
			}
			continue
		}
		l, err := leaderOf(resp)
		if err != nil {
			e.log.Error("observe the leader", zap.Error(err))
		} else if !sent || l.Address != last.Address || l.Epoch != last.Epoch {
			select {
			case ch <- l:
			case <-ctx.Done():
				return
			}
			last, sent = l, true
		}
		// Wait for the next change of the election, then read again.
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range e.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if err := wr.Err(); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("observe the leader: watch", zap.Error(err))
					sleep(ctx, 500*time.Millisecond)
				}
				break
			}
			if len(wr.Events) > 0 {
				break
			}
		}
		wcancel()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// fence returns the comparison that holds while this JobManager leads at
// its epoch, or the NotLeaderError for op.
func (e *Etcd) fence(op string) (clientv3.Cmp, *etcdSession, int64, error) {
	e.mu.Lock()
	cur := e.sess
	var key string
	var epoch, elected int64
	if cur != nil {
		key, epoch, elected = cur.key, cur.epoch, cur.elected
	}
	e.mu.Unlock()
	if cur == nil || epoch == 0 || isDone(cur.s.Done()) {
		return clientv3.Cmp{}, nil, 0, &NotLeaderError{Op: op, Epoch: elected}
	}
	return clientv3.Compare(clientv3.CreateRevision(key), "=", epoch), cur, epoch, nil
}

// write runs then (cmps hold) or els (they do not) in one transaction, if
// this JobManager still leads at its epoch; it returns the inner
// transaction's response. Refused for leadership, it ends this store's
// leadership and returns a NotLeaderError for op. Any other error leaves
// the outcome unknown: the write may have been applied.
func (e *Etcd) write(ctx context.Context, op string, cmps []clientv3.Cmp, then, els []clientv3.Op) (*pb.TxnResponse, error) {
	leading, cur, epoch, err := e.fence(op)
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Txn(ctx).If(leading).Then(clientv3.OpTxn(cmps, then, els)).Commit()
	if err != nil {
		return nil, fmt.Errorf("ha: %s: etcd: %w", op, e.explain(err))
	}
	if !resp.Succeeded {
		e.mu.Lock()
		if e.sess == cur && cur.epoch == epoch {
			cur.epoch = 0
		}
		e.mu.Unlock()
		e.log.Warn("write refused: leadership has ended", zap.String("write", op), zap.Int64("epoch", epoch))
		return nil, &NotLeaderError{Op: op, Epoch: epoch}
	}
	return resp.Responses[0].GetResponseTxn(), nil
}

func (e *Etcd) get(ctx context.Context, op, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := e.client.Get(ctx, key, opts...)
	if err != nil {
		return nil, fmt.Errorf("ha: %s: etcd: %w", op, e.explain(err))
	}
	return resp, nil
}

// readInt reads a decimal of at least min at key: its value (def when
// absent) and its mod revision (0 when absent), for a compare-and-swap.
func (e *Etcd) readInt(ctx context.Context, op, key string, def, min int64) (v, rev int64, err error) {
	resp, err := e.get(ctx, op, key)
	if err != nil {
		return 0, 0, err
	}
	if len(resp.Kvs) == 0 {
		return def, 0, nil
	}
	kv := resp.Kvs[0]
	v, err = parseInt(string(kv.Key), kv.Value, min)
	if err != nil {
		return 0, 0, fmt.Errorf("ha: %s: %w", op, err)
	}
	return v, kv.ModRevision, nil
}

func parseInt(key string, val []byte, min int64) (int64, error) {
	v, err := strconv.ParseInt(string(val), 10, 64)
	if err != nil || v < min {
		return 0, corrupt(key, val, fmt.Sprintf("not a decimal integer of at least %d", min))
	}
	return v, nil
}

// CorruptError is the error of a value read from etcd (or a blob it
// points at) that cannot be decoded or fails its checks. It matches
// ErrCorrupt.
type CorruptError struct {
	Key    string // the etcd key
	Reason string
	Value  []byte // the value, or its beginning
}

func (e *CorruptError) Error() string {
	v := e.Value
	more := ""
	if len(v) > 64 {
		v, more = v[:64], fmt.Sprintf("... (%d bytes)", len(e.Value))
	}
	return fmt.Sprintf("etcd key %s holds a corrupt value: %s (value %q%s)", e.Key, e.Reason, v, more)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(key string, val []byte, reason string) error {
	return &CorruptError{Key: key, Reason: reason, Value: append([]byte(nil), val...)}
}

// validID tells whether id may be part of a key and a blob name.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i, c := range []byte(id) {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func checkJobID(op, jobID string) error {
	if !validID(jobID) {
		return fmt.Errorf("ha: %s: job id %q is not 1 to %d letters, digits, '.', '_' or '-' starting with a letter or digit", op, jobID, maxIDLength)
	}
	return nil
}

func (e *Etcd) graphKey(jobID string) string   { return e.prefix + "jobgraphs/" + jobID }
func (e *Etcd) jobPrefix(jobID string) string  { return e.prefix + "jobs/" + jobID + "/" }
func (e *Etcd) counterKey(jobID string) string { return e.jobPrefix(jobID) + "counter" }
func (e *Etcd) attemptKey(jobID string) string { return e.jobPrefix(jobID) + "attempt" }
func (e *Etcd) lastAddedKey(jobID string) string {
	return e.jobPrefix(jobID) + "last-added"
}
func (e *Etcd) checkpointsPrefix(jobID string) string { return e.jobPrefix(jobID) + "checkpoints/" }
func (e *Etcd) checkpointKey(jobID string, id int64) string {
	return fmt.Sprintf("%s%019d", e.checkpointsPrefix(jobID), id)
}
func (e *Etcd) resultKey(jobID string) string { return e.prefix + "results/" + jobID }

// jobGraphValue is the value of jobgraphs/<job>.
type jobGraphValue struct {
	Name     string `json:"name"`
	FileName string `json:"fileName"`
	Blob     string `json:"blob"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

func decodeJobGraph(key string, val []byte) (jobGraphValue, error) {
	var v jobGraphValue
	if err := json.Unmarshal(val, &v); err != nil {
		return v, corrupt(key, val, "not a job graph pointer: "+err.Error())
	}
	if sum, err := hex.DecodeString(v.SHA256); err != nil || len(sum) != sha256.Size || v.Blob == "" || v.Size < 0 || v.Size > config.MaxJobFileSize {
		return v, corrupt(key, val, fmt.Sprintf("a job graph pointer needs a blob, a size of at most %d bytes and a SHA-256", config.MaxJobFileSize))
	}
	return v, nil
}

// PutJobGraph stores (or replaces) a submitted job graph: the job file as
// a new blob in the storage directory, then the pointer to it in etcd. A
// replaced blob is deleted afterwards; the new one if the pointer was
// refused.
func (e *Etcd) PutJobGraph(ctx context.Context, g JobGraphRecord) error {
	op := "put job graph of job " + g.JobID
	if g.JobID == "" {
		return errors.New("ha: put job graph: empty job id")
	}
	if err := checkJobID(op, g.JobID); err != nil {
		return err
	}
	if len(g.Spec) > config.MaxJobFileSize {
		return fmt.Errorf("ha: %s: the job file is %d bytes: the limit is %d bytes", op, len(g.Spec), config.MaxJobFileSize)
	}
	if e.blobDir == "" {
		return fmt.Errorf("ha: %s: no %s: this store only observes", op, config.HighAvailabilityStorageDir.Key)
	}
	// Refused before anything is written when leadership is known lost.
	if _, _, _, err := e.fence(op); err != nil {
		return err
	}
	sum := sha256.Sum256(g.Spec)
	blob := e.blobDir + "/" + g.JobID + "-" + randomHex(8)
	st, native, err := snapshot.ResolveStore(blob)
	if err != nil {
		return fmt.Errorf("ha: %s: %w", op, err)
	}
	if err := st.Publish(ctx, native, g.Spec); err != nil {
		return fmt.Errorf("ha: %s: write the job file to %s: %w", op, blob, err)
	}
	val, err := json.Marshal(jobGraphValue{Name: g.Name, FileName: g.FileName, Blob: blob, Size: int64(len(g.Spec)), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return fmt.Errorf("ha: %s: %w", op, err)
	}
	key := e.graphKey(g.JobID)
	resp, err := e.write(ctx, op, nil, []clientv3.Op{clientv3.OpPut(key, string(val), clientv3.WithPrevKV())}, nil)
	if err != nil {
		if errors.Is(err, ErrNotLeader) { // certainly not referenced
			e.removeBlob(ctx, op, blob)
		}
		return err
	}
	if prev := resp.Responses[0].GetResponsePut().GetPrevKv(); prev != nil {
		if old, err := decodeJobGraph(key, prev.Value); err != nil {
			e.log.Warn("replaced a corrupt job graph pointer", zap.Error(err))
		} else if old.Blob != blob {
			e.removeBlob(ctx, op, old.Blob)
		}
	}
	return nil
}

// removeBlob deletes a blob no pointer names; a failure leaves garbage,
// never a dangling pointer, and is logged.
func (e *Etcd) removeBlob(ctx context.Context, op, blob string) {
	st, native, err := snapshot.ResolveStore(blob)
	if err == nil {
		err = st.Remove(ctx, native)
	}
	if err != nil {
		e.log.Warn("could not delete a job file no longer referenced", zap.String("write", op), zap.String("blob", blob), zap.Error(err))
	}
}

// JobGraph returns the stored graph of a job; ok is false when there is
// none. The job file is read from its blob and checked against the size
// and SHA-256 in the pointer.
func (e *Etcd) JobGraph(ctx context.Context, jobID string) (g JobGraphRecord, ok bool, err error) {
	op := "read job graph of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return g, false, err
	}
	key := e.graphKey(jobID)
	resp, err := e.get(ctx, op, key)
	if err != nil || len(resp.Kvs) == 0 {
		return g, false, err
	}
	v, err := decodeJobGraph(key, resp.Kvs[0].Value)
	if err != nil {
		return g, false, fmt.Errorf("ha: %s: %w", op, err)
	}
	spec, err := readBlob(ctx, v)
	if err != nil {
		return g, false, fmt.Errorf("ha: %s: job file %s (etcd key %s): %w", op, v.Blob, key, err)
	}
	return JobGraphRecord{JobID: jobID, Name: v.Name, FileName: v.FileName, Spec: spec}, true, nil
}

func readBlob(ctx context.Context, v jobGraphValue) ([]byte, error) {
	st, native, err := snapshot.ResolveStore(v.Blob)
	if err != nil {
		return nil, err
	}
	rc, size, err := st.Open(ctx, native, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	if size != v.Size {
		return nil, fmt.Errorf("%w: it is %d bytes, its pointer says %d", ErrCorrupt, size, v.Size)
	}
	b, err := io.ReadAll(io.LimitReader(rc, v.Size+1))
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); int64(len(b)) != v.Size || hex.EncodeToString(sum[:]) != v.SHA256 {
		return nil, fmt.Errorf("%w: its %d bytes do not match the size and SHA-256 of its pointer", ErrCorrupt, len(b))
	}
	return b, nil
}

// JobIDs returns the ids of every stored job graph, sorted.
func (e *Etcd) JobIDs(ctx context.Context) ([]string, error) {
	prefix := e.prefix + "jobgraphs/"
	resp, err := e.get(ctx, "list job graphs", prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), prefix))
	}
	return ids, nil
}

// RemoveJob forgets a globally terminal job: its graph (and then its
// blob), counter, attempt and checkpoint pointers, in one transaction;
// its result stays. Removing an unknown job is not an error.
func (e *Etcd) RemoveJob(ctx context.Context, jobID string) error {
	op := "remove job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return err
	}
	key := e.graphKey(jobID)
	resp, err := e.write(ctx, op, nil, []clientv3.Op{
		clientv3.OpDelete(key, clientv3.WithPrevKV()),
		clientv3.OpDelete(e.jobPrefix(jobID), clientv3.WithPrefix()),
	}, nil)
	if err != nil {
		return err
	}
	for _, prev := range resp.Responses[0].GetResponseDeleteRange().GetPrevKvs() {
		if v, err := decodeJobGraph(key, prev.Value); err != nil {
			e.log.Warn("removed a corrupt job graph pointer", zap.Error(err))
		} else {
			e.removeBlob(ctx, op, v.Blob)
		}
	}
	return nil
}

// casInt moves the decimal at key from what update is given to what it
// returns, in a fenced transaction with a compare on the revision read,
// read and tried again when another caller changed it in between. update
// may refuse with an error; def is the value of an absent key, min the
// lowest valid one.
func (e *Etcd) casInt(ctx context.Context, op, key string, def, min int64, update func(cur int64) (int64, error)) error {
	for {
		cur, rev, err := e.readInt(ctx, op, key, def, min)
		if err != nil {
			return err
		}
		next, err := update(cur)
		if err != nil {
			return err
		}
		resp, err := e.write(ctx, op,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
			[]clientv3.Op{clientv3.OpPut(key, strconv.FormatInt(next, 10))}, nil)
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
	}
}

// NextCheckpointID returns the job's next checkpoint id: 1, 2, 3, ...,
// also across leaders.
func (e *Etcd) NextCheckpointID(ctx context.Context, jobID string) (int64, error) {
	op := "next checkpoint id of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return 0, err
	}
	var id int64
	err := e.casInt(ctx, op, e.counterKey(jobID), 1, 1, func(cur int64) (int64, error) {
		if cur == math.MaxInt64 {
			return 0, fmt.Errorf("ha: %s: the ids are exhausted", op)
		}
		id = cur
		return cur + 1, nil
	})
	return id, err
}

// CheckpointIDCounter returns the job's next unused checkpoint id without
// using it (1 for a new job).
func (e *Etcd) CheckpointIDCounter(ctx context.Context, jobID string) (int64, error) {
	op := "read checkpoint id counter of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return 0, err
	}
	v, _, err := e.readInt(ctx, op, e.counterKey(jobID), 1, 1)
	return v, err
}

// SetCheckpointIDCounter records that every id below next is used; the
// counter never goes back.
func (e *Etcd) SetCheckpointIDCounter(ctx context.Context, jobID string, next int64) error {
	op := fmt.Sprintf("set checkpoint id counter of job %s to %d", jobID, next)
	if err := checkJobID(op, jobID); err != nil {
		return err
	}
	return e.casInt(ctx, op, e.counterKey(jobID), 1, 1, func(cur int64) (int64, error) {
		if next < cur {
			return 0, fmt.Errorf("ha: %s: already at %d", op, cur)
		}
		return next, nil
	})
}

// SetJobAttempt records the attempt of the job's execution about to be
// deployed; attempts only move forward.
func (e *Etcd) SetJobAttempt(ctx context.Context, jobID string, attempt int) error {
	op := fmt.Sprintf("set attempt of job %s to %d", jobID, attempt)
	if err := checkJobID(op, jobID); err != nil {
		return err
	}
	return e.casInt(ctx, op, e.attemptKey(jobID), 0, 0, func(cur int64) (int64, error) {
		if int64(attempt) < cur {
			return 0, fmt.Errorf("ha: %s: already at %d", op, cur)
		}
		return int64(attempt), nil
	})
}

// JobAttempt returns the job's recorded attempt, 0 when none was recorded.
func (e *Etcd) JobAttempt(ctx context.Context, jobID string) (int, error) {
	op := "read attempt of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return 0, err
	}
	v, _, err := e.readInt(ctx, op, e.attemptKey(jobID), 0, 0)
	if err == nil && v > math.MaxInt32 {
		return 0, fmt.Errorf("ha: %s: %w", op, corrupt(e.attemptKey(jobID), []byte(strconv.FormatInt(v, 10)), "attempt out of range"))
	}
	return int(v), err
}

// checkpointValue is the value of jobs/<job>/checkpoints/<id>.
type checkpointValue struct {
	Location  string `json:"location"`
	Savepoint bool   `json:"savepoint,omitempty"`
}

// AddCompletedCheckpoint records a completed checkpoint of a job, its id
// above every id recorded for the job before (last-added moves with it,
// in the same transaction).
func (e *Etcd) AddCompletedCheckpoint(ctx context.Context, jobID string, cp CompletedCheckpoint) error {
	op := fmt.Sprintf("add completed checkpoint %d of job %s", cp.CheckpointID, jobID)
	if err := checkJobID(op, jobID); err != nil {
		return err
	}
	if cp.CheckpointID < 0 {
		return fmt.Errorf("ha: %s: negative id", op)
	}
	val, err := json.Marshal(checkpointValue{Location: cp.Location, Savepoint: cp.Savepoint})
	if err != nil {
		return fmt.Errorf("ha: %s: %w", op, err)
	}
	lastKey := e.lastAddedKey(jobID)
	for {
		resp, err := e.get(ctx, op, lastKey)
		if err != nil {
			return err
		}
		var rev int64
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			last, err := parseInt(lastKey, kv.Value, 0)
			if err != nil {
				return fmt.Errorf("ha: %s: %w", op, err)
			}
			if cp.CheckpointID <= last {
				return fmt.Errorf("ha: %s: not after checkpoint %d", op, last)
			}
			rev = kv.ModRevision
		}
		tresp, err := e.write(ctx, op,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(lastKey), "=", rev)},
			[]clientv3.Op{
				clientv3.OpPut(e.checkpointKey(jobID, cp.CheckpointID), string(val)),
				clientv3.OpPut(lastKey, strconv.FormatInt(cp.CheckpointID, 10)),
			}, nil)
		if err != nil {
			return err
		}
		if tresp.Succeeded {
			return nil
		}
	}
}

// RemoveCompletedCheckpoint forgets one completed checkpoint of a job;
// removing an unknown one is not an error.
func (e *Etcd) RemoveCompletedCheckpoint(ctx context.Context, jobID string, checkpointID int64) error {
	op := fmt.Sprintf("remove completed checkpoint %d of job %s", checkpointID, jobID)
	if err := checkJobID(op, jobID); err != nil {
		return err
	}
	if checkpointID < 0 {
		return nil // never added
	}
	_, err := e.write(ctx, op, nil, []clientv3.Op{clientv3.OpDelete(e.checkpointKey(jobID, checkpointID))}, nil)
	return err
}

// CompletedCheckpoints returns the job's completed checkpoints, oldest
// first (the keys' zero-padded ids sort as numbers).
func (e *Etcd) CompletedCheckpoints(ctx context.Context, jobID string) ([]CompletedCheckpoint, error) {
	op := "read completed checkpoints of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return nil, err
	}
	prefix := e.checkpointsPrefix(jobID)
	resp, err := e.get(ctx, op, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	cps := make([]CompletedCheckpoint, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		suffix := strings.TrimPrefix(key, prefix)
		id, perr := strconv.ParseInt(suffix, 10, 64)
		if perr != nil || id < 0 || len(suffix) != 19 {
			return nil, fmt.Errorf("ha: %s: etcd key %s does not end in a 19-digit checkpoint id", op, key)
		}
		var v checkpointValue
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("ha: %s: %w", op, corrupt(key, kv.Value, "not a checkpoint pointer: "+err.Error()))
		}
		cps = append(cps, CompletedCheckpoint{CheckpointID: id, Location: v.Location, Savepoint: v.Savepoint})
	}
	return cps, nil
}

// jobResultValue is the value of results/<job>.
type jobResultValue struct {
	Name    string    `json:"name,omitempty"`
	State   string    `json:"state"`
	Error   string    `json:"error,omitempty"`
	EndTime time.Time `json:"endTime"`
}

func decodeJobResult(key string, val []byte) (JobResult, error) {
	var v jobResultValue
	if err := json.Unmarshal(val, &v); err != nil {
		return JobResult{}, corrupt(key, val, "not a job result: "+err.Error())
	}
	r := JobResult{JobID: key[strings.LastIndexByte(key, '/')+1:], Name: v.Name, State: JobResultState(v.State), Error: v.Error, EndTime: v.EndTime}
	switch r.State {
	case JobFinished, JobFailed, JobCanceled:
		return r, nil
	}
	return JobResult{}, corrupt(key, val, fmt.Sprintf("state %q is not FINISHED, FAILED or CANCELED", v.State))
}

// PutJobResult records how a job ended (see the package invariants): only
// if the job has no result yet, in the fenced transaction.
func (e *Etcd) PutJobResult(ctx context.Context, jobID string, r JobResult) error {
	r, err := checkJobResult(jobID, r)
	if err != nil {
		return err
	}
	op := "put result of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return err
	}
	val, err := json.Marshal(jobResultValue{Name: r.Name, State: string(r.State), Error: r.Error, EndTime: r.EndTime})
	if err != nil {
		return fmt.Errorf("ha: %s: %w", op, err)
	}
	key := e.resultKey(jobID)
	resp, err := e.write(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, string(val))},
		[]clientv3.Op{clientv3.OpGet(key)})
	if err != nil || resp.Succeeded {
		return err
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 { // removed in between: results are never removed
		return fmt.Errorf("ha: %s: the recorded result vanished", op)
	}
	recorded, err := decodeJobResult(key, kvs[0].Value)
	if err != nil {
		return fmt.Errorf("ha: %s: %w", op, err)
	}
	return sameResult(recorded, r)
}

// JobResult returns the recorded result of a job; ok is false when there
// is none.
func (e *Etcd) JobResult(ctx context.Context, jobID string) (r JobResult, ok bool, err error) {
	op := "read result of job " + jobID
	if err := checkJobID(op, jobID); err != nil {
		return r, false, err
	}
	key := e.resultKey(jobID)
	resp, err := e.get(ctx, op, key)
	if err != nil || len(resp.Kvs) == 0 {
		return r, false, err
	}
	r, err = decodeJobResult(key, resp.Kvs[0].Value)
	if err != nil {
		return r, false, fmt.Errorf("ha: %s: %w", op, err)
	}
	return r, true, nil
}

// JobResults returns every recorded result, by job id.
func (e *Etcd) JobResults(ctx context.Context) ([]JobResult, error) {
	const op = "read job results"
	resp, err := e.get(ctx, op, e.prefix+"results/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	rs := make([]JobResult, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := decodeJobResult(string(kv.Key), kv.Value)
		if err != nil {
			return nil, fmt.Errorf("ha: %s: %w", op, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
