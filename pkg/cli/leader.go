package cli

// Finding the JobManager that serves a call. With high availability a
// cluster has several JobManagers; one leads and serves the API, the
// standbys refuse every call but ListJobManagers with UNAVAILABLE and the
// leader's address in the trailer (leaderepoch.LeaderAddressKey, empty
// while no one leads). weir finds the leader in one of two ways:
//
//   - a list (--jobmanager host1:6123,host2:6123, or WEIR_JOBMANAGER):
//     the addresses are asked in order, and a standby's answer is followed
//     to the leader it names;
//   - the high-availability keys (--config, -D): the HA service (etcd)
//     says who leads, and weir asks it.
//
// A call goes to another JobManager only when the first one provably did
// not act on it: it could not be reached (no connection, so no request),
// or it answered as a standby. Any other answer, errors included, is
// final, so a submit, a cancel or a savepoint is never sent twice. While
// some JobManager (or etcd) answers but no leader serves, weir asks again
// with a short backoff until --timeout; when no JobManager can be reached
// at all it fails at once, as it always has for one address.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/proto/weirpb"
)

const (
	// maxJobManagers bounds the --jobmanager list: a cluster has two or
	// three JobManagers, and each unreachable one costs a connect timeout.
	maxJobManagers = 16
	// maxRedirects bounds the standbys' answers followed from one
	// JobManager: one is the norm (a standby names the leader), more means
	// the JobManagers disagree.
	maxRedirects = 3
	// maxConns bounds the JobManagers one invocation talks to, whatever
	// the standbys name.
	maxConns = 64
	// maxStatements bounds what a failure message lists.
	maxStatements = 16
	// maxHostLength is DNS's limit on a name.
	maxHostLength = 253
	// maxShownAddress bounds how much of a malformed address a message
	// repeats.
	maxShownAddress = 64

	firstRetryDelay = 50 * time.Millisecond
	maxRetryDelay   = time.Second
)

// LeaderReader tells who leads a cluster with high availability.
type LeaderReader interface {
	// Leader returns the leading JobManager's address (host:port), ""
	// when none leads now.
	Leader(ctx context.Context) (string, error)
	// Close releases the reader's connections.
	Close() error
}

// HAServices opens a LeaderReader for the cluster that cfg's
// high-availability.* keys describe; it is called only when
// high-availability.type is not none, and does no I/O: Leader does.
type HAServices func(cfg *config.Config) (LeaderReader, error)

// jobManagerList is the value of --jobmanager (and WEIR_JOBMANAGER): one
// address or several, comma-separated. The flag is checked while flags are
// parsed; the environment only when a command needs a JobManager, so that
// a bad variable does not break `weir version`.
type jobManagerList struct {
	raw     string
	addrs   []string
	err     error // the environment's value is not a valid list
	fromEnv bool
}

func (l *jobManagerList) String() string { return l.raw }
func (l *jobManagerList) Type() string   { return "host:port,..." }
func (l *jobManagerList) Set(s string) error {
	addrs, err := parseJobManagers(s)
	if err != nil {
		return err
	}
	*l = jobManagerList{raw: s, addrs: addrs}
	return nil
}

// parseJobManagers parses "host:port" or "host1:port,host2:port". Spaces
// around an entry are dropped; an empty entry, a bad address or a repeated
// one is an error naming the entry.
func parseJobManagers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty: want host:port, or host1:port,host2:port")
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxJobManagers {
		return nil, fmt.Errorf("%d entries: the limit is %d JobManagers", len(parts), maxJobManagers)
	}
	addrs := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("entry %d is empty", i+1)
		}
		if err := checkAddress(p); err != nil {
			if len(parts) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("entry %d %q: %w", i+1, clip(p), err)
		}
		for j, q := range addrs {
			if q == p {
				return nil, fmt.Errorf("entry %d %q repeats entry %d", i+1, p, j+1)
			}
		}
		addrs = append(addrs, p)
	}
	return addrs, nil
}

// checkAddress accepts host:port with a host name or IP address and a port
// number; the error says what is wrong, without repeating the address.
func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("not host:port (%s)", ae.Err)
		}
		return fmt.Errorf("not host:port (%v)", err)
	}
	switch n, err := strconv.Atoi(port); {
	case err != nil || n < 1 || n > 65535:
		return fmt.Errorf("port %q is not a number from 1 to 65535", clip(port))
	case host == "":
		return errors.New("no host before the port")
	case len(host) > maxHostLength:
		return fmt.Errorf("host of %d bytes: the limit is %d", len(host), maxHostLength)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("host %q is not a host name or IP address", clip(host))
		}
	}
	return nil
}

// clip shortens a string from the command line or the network for a
// message.
func clip(s string) string {
	if len(s) > maxShownAddress {
		return s[:maxShownAddress] + "..."
	}
	return s
}

// config returns the configuration of weir: the file found as the daemons
// find theirs (--config, else $WEIR_CONF_DIR/config.yaml, else
// /etc/weir/config.yaml if it exists; config.ConfigFile) with the -D keys
// on top, loaded once; its warnings (unknown keys) are printed the first
// time.
func (a *app) config() (*config.Config, error) {
	if a.cfg == nil && a.cfgErr == nil {
		path, from, err := config.ConfigFile(a.configFile, a.getenv, a.fileExists)
		if err != nil {
			a.cfgErr = failf("%v", err)
			return nil, a.cfgErr
		}
		cfg, warnings, err := config.Load(path, a.overrides)
		if err != nil {
			a.cfgErr = failf("%v", err)
			return nil, a.cfgErr
		}
		for _, w := range warnings {
			fmt.Fprintf(a.stderr, "weir: warning: %s\n", printable(w))
		}
		a.cfg, a.cfgFile, a.cfgFrom = cfg, path, from
	}
	return a.cfg, a.cfgErr
}

// highAvailability reports whether the configuration names an HA service
// that finds the leader.
func (a *app) highAvailability() bool {
	cfg, err := a.config()
	return err == nil && cfg.String(config.HighAvailabilityType) != "none"
}

// configAddress is the JobManager address the configuration gives when
// jobmanager.rpc.address or jobmanager.rpc.port is set, as the
// TaskManagers find it; "" when neither is.
func (a *app) configAddress() string {
	cfg, err := a.config()
	if err != nil || !cfg.IsSet(config.JobManagerRPCAddress) && !cfg.IsSet(config.JobManagerRPCPort) {
		return ""
	}
	return net.JoinHostPort(cfg.String(config.JobManagerRPCAddress), strconv.Itoa(cfg.Int(config.JobManagerRPCPort)))
}

// configOnCommandLine reports whether what the configuration says about
// the JobManager was given on the command line (--config, or -D of a
// high-availability or jobmanager.rpc key) rather than found in
// $WEIR_CONF_DIR or /etc/weir.
func (a *app) configOnCommandLine() bool {
	if a.configFile != "" {
		return true
	}
	for _, d := range a.overrides {
		k, _, _ := strings.Cut(d, "=")
		k = strings.TrimSpace(k)
		if strings.HasPrefix(k, "high-availability") || strings.HasPrefix(k, "jobmanager.rpc.") {
			return true
		}
	}
	return false
}

// route says where a call's JobManager comes from: the addresses to ask in
// order, or none when the HA service says who leads. The first of:
//
//  1. --jobmanager (-m);
//  2. the configuration given on the command line (--config, -D): its
//     high-availability keys, else jobmanager.rpc.address and port;
//  3. WEIR_JOBMANAGER;
//  4. the same from the configuration file found on its own
//     ($WEIR_CONF_DIR/config.yaml, /etc/weir/config.yaml);
//  5. 127.0.0.1:6123.
//
// What is on the command line is more specific than the environment, and
// the environment more specific than a file found on its own.
func (a *app) route() ([]string, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if a.apiTLS == nil && cfg.Bool(config.SSLAPIEnabled) {
		// Files that cannot be used end the command before any call,
		// naming the key and the file.
		if a.apiTLS, err = security.APIClientFromConfig(cfg, nil); err != nil {
			return nil, failf("%v", err)
		}
	}
	if a.root.PersistentFlags().Changed("jobmanager") {
		return a.jobmanagers.addrs, nil
	}
	fromConfig := func() ([]string, bool, error) {
		if a.highAvailability() {
			return nil, true, nil
		}
		addr := a.configAddress()
		if addr == "" {
			return nil, false, nil
		}
		if err := checkAddress(addr); err != nil {
			return nil, false, failf("%s and %s: %q: %v", config.JobManagerRPCAddress.Key, config.JobManagerRPCPort.Key, clip(addr), err)
		}
		return []string{addr}, true, nil
	}
	if a.configOnCommandLine() {
		if addrs, ok, err := fromConfig(); ok || err != nil {
			return addrs, err
		}
	}
	if l := a.jobmanagers; l.fromEnv {
		if l.err != nil {
			return nil, usageError{fmt.Errorf("%s %q: %w", EnvJobManager, clip(l.raw), l.err)}
		}
		return l.addrs, nil
	}
	if addrs, ok, err := fromConfig(); ok || err != nil {
		return addrs, err
	}
	return a.jobmanagers.addrs, nil
}

// call runs one RPC on the JobManager that serves it, finding it first
// (see the top of this file), all within timeout, and turns a failure into
// the line the user sees.
func (a *app) call(ctx context.Context, timeout time.Duration, rpc func(context.Context, weirpb.JobServiceClient) error) error {
	list, err := a.route()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := &search{a: a, ctx: ctx, rctx: rctx, timeout: timeout, list: list, rpc: rpc}
	return s.run()
}

// search is one call's hunt for the JobManager that serves it.
type search struct {
	a        *app
	ctx      context.Context // the command's: done on Ctrl-C
	rctx     context.Context // the call's: ends at --timeout
	timeout  time.Duration
	list     []string // nil: ask the HA service
	rpc      func(context.Context, weirpb.JobServiceClient) error
	said     []statement // the last thing each one said, in the order first asked
	alive    bool        // this round, a JobManager or etcd answered: a leader may come
	heardAny bool        // some JobManager or etcd answered during the call
	ended    bool        // the call's deadline passed
	done     bool        // the search is over, with final as the call's error
	final    error
}

// statement is what one JobManager (or etcd) said, for the failure message.
type statement struct{ who, what string }

func (s *search) note(who, what string) {
	for i := range s.said {
		if s.said[i].who == who {
			s.said[i].what = what
			return
		}
	}
	if len(s.said) < maxStatements {
		s.said = append(s.said, statement{who, what})
	}
}

func (s *search) statements() string {
	parts := make([]string, len(s.said))
	for i, st := range s.said {
		parts[i] = st.who + ": " + st.what
	}
	return strings.Join(parts, "; ")
}

func (s *search) run() error {
	delay := firstRetryDelay
	for {
		s.round()
		if s.done {
			return s.final
		}
		if s.ended || !s.alive || !sleep(s.rctx, delay) {
			return s.failure()
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// failure explains a search that found no leader.
func (s *search) failure() error {
	switch {
	case s.ctx.Err() != nil:
		return errInterrupted
	case s.alive || s.ended && s.heardAny:
		return failf("found no leading JobManager within %s: %s (set --timeout to wait longer)", s.timeout, s.statements())
	case len(s.list) == 1 && len(s.said) == 1:
		return failf("cannot reach the JobManager at %s: %s (is it running? set --jobmanager or %s)",
			s.said[0].who, s.said[0].what, EnvJobManager)
	}
	return failf("cannot reach any JobManager: %s (are they running? set --jobmanager or %s)", s.statements(), EnvJobManager)
}

// round asks each JobManager once, the last leader first, following the
// standbys' answers. It ends with s.done (the call is over) or not (ask
// again later, if s.alive).
func (s *search) round() {
	leader := s.a.leader
	s.alive = false
	visited := map[string]bool{}
	if leader != "" && s.chain(leader, visited) {
		return
	}
	if s.list != nil {
		for _, addr := range s.list {
			if s.chain(addr, visited) {
				return
			}
		}
		return
	}
	l, ok := s.haLeader()
	if ok && l != "" {
		s.chain(l, visited)
	}
}

// haLeader asks the HA service who leads; false when it could not say
// (s.done, or s.ended).
func (s *search) haLeader() (string, bool) {
	a := s.a
	cfg, _ := a.config() // loaded by route
	eps := cfg.String(config.HighAvailabilityEtcdEndpoints)
	who := "etcd at " + eps
	if a.leaders == nil {
		if a.services.HA == nil {
			s.end(failf("%s %s: this weir has no high-availability services; set --jobmanager",
				config.HighAvailabilityType.Key, cfg.String(config.HighAvailabilityType)))
			return "", false
		}
		r, err := a.services.HA(cfg)
		if err != nil {
			s.end(failf("%v", err))
			return "", false
		}
		a.leaders = r
	}
	l, err := a.leaders.Leader(s.rctx)
	switch {
	case s.ctx.Err() != nil:
		s.end(errInterrupted)
		return "", false
	case err != nil && s.rctx.Err() != nil && s.heardAny:
		// Asking again after earlier answers: those tell the story.
		s.ended = true
		return "", false
	case err != nil && s.rctx.Err() != nil:
		s.end(failf("%s did not answer within %s (%s; set --timeout)%s", who, s.timeout, config.HighAvailabilityEtcdEndpoints.Key, whyNoAnswer(err)))
		return "", false
	case err != nil:
		s.end(failf("cannot find the leader in %s: %v", who, err))
		return "", false
	}
	s.answered()
	switch err := checkAddress(l); {
	case l == "":
		s.note(who, "no leader now")
	case err != nil:
		s.note(who, fmt.Sprintf("names the leader %q: %v", clip(l), err))
		return "", true
	default:
		s.note(who, "the leader is "+l)
	}
	return l, true
}

// whyNoAnswer is what the HA service knows of why a request got no answer
// (package ha: the TLS handshakes with etcd fail), as ": why", or "".
func whyNoAnswer(err error) string {
	var w interface{ NoAnswerReason() string }
	if errors.As(err, &w) {
		return ": " + w.NoAnswerReason()
	}
	return ""
}

// chain asks addr, and the JobManagers that standbys name from there, up
// to maxRedirects; true when the search is over (served or final).
func (s *search) chain(addr string, visited map[string]bool) bool {
	var path []string
	for n := 0; !visited[addr]; n++ {
		visited[addr] = true
		r := s.try(addr)
		switch {
		case r.served:
			// It served the call, or refused it as the leader (a job not
			// found) or a JobManager without HA would: ask it first next time.
			s.a.leader = addr
			s.end(r.err)
			return true
		case r.err != nil:
			s.end(r.err)
			return true
		case r.expired:
			s.ended = true
			return true
		case r.unreachable != "":
			s.note(addr, r.unreachable)
			return s.ended
		}
		s.answered()
		next, what := r.redirect()
		s.note(addr, what)
		path = append(path, addr+": "+what)
		if next == "" {
			return false
		}
		if n == maxRedirects {
			s.end(failf("gave up after following %d redirects: %s", maxRedirects, strings.Join(path, "; ")))
			return true
		}
		addr = next
	}
	return false
}

func (s *search) end(err error) { s.done, s.final = true, err }

func (s *search) answered() { s.alive, s.heardAny = true, true }

// attempt is how one JobManager took one call: it served it (err is its
// answer), or the call is over for another reason (err), or the call's
// deadline passed while asking again one that had answered before
// (expired), or it could not be reached (unreachable says why), or it is a
// standby naming leaders.
type attempt struct {
	served      bool
	err         error
	expired     bool
	unreachable string
	leaders     []string
}

// heard reports whether who said something earlier in this call.
func (s *search) heard(who string) bool {
	for _, st := range s.said {
		if st.who == who {
			return true
		}
	}
	return false
}

// redirect reads a standby's answer: the leader to ask next ("" for none)
// and what the standby said.
func (r attempt) redirect() (next, what string) {
	switch {
	case len(r.leaders) != 1:
		return "", fmt.Sprintf("standby, names %d leaders", len(r.leaders))
	case r.leaders[0] == "":
		return "", "standby, no leader now"
	}
	l := r.leaders[0]
	if err := checkAddress(l); err != nil {
		return "", fmt.Sprintf("standby, names the leader %q: %v", clip(l), err)
	}
	return l, "standby, the leader is " + l
}

// try sends the call to addr once.
func (s *search) try(addr string) attempt {
	a := s.a
	if s.ctx.Err() != nil {
		return attempt{err: errInterrupted}
	}
	cc, err := a.conn(addr)
	if err != nil {
		return attempt{unreachable: err.Error()}
	}
	// With somewhere else to go, a JobManager that does not connect
	// soon (a dead machine drops the packets) is left for the next.
	if len(s.list) != 1 || addr != s.list[0] {
		wait := a.connectTimeout
		if dl, ok := s.rctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		wctx, cancel := context.WithTimeout(s.rctx, wait)
		ok := awaitConnection(wctx, cc)
		cancel()
		if !ok {
			switch {
			case s.ctx.Err() != nil:
				return attempt{err: errInterrupted}
			case s.rctx.Err() != nil && s.heard(addr):
				return attempt{expired: true}
			}
			s.ended = s.rctx.Err() != nil
			return attempt{unreachable: fmt.Sprintf("no connection within %s", wait.Round(time.Millisecond))}
		}
	}
	var ci callInfo
	err = s.rpc(context.WithValue(s.rctx, callInfoKey{}, &ci), weirpb.NewJobServiceClient(cc))
	if err == nil {
		return attempt{served: true}
	}
	if s.ctx.Err() != nil {
		return attempt{err: errInterrupted}
	}
	connected := ci.peer.Addr != nil
	// The RPC's deadline passing shows as DeadlineExceeded, as Canceled
	// (RST_STREAM) when the server's copy of the deadline fires first, or
	// as the server's handler returning that deadline's error: in each case
	// the deadline is behind us, and the answer did not come in time.
	// (Context timers may fire late, so the clock decides, not rctx.Err.)
	// An error before the deadline is the server's own, even a
	// DeadlineExceeded (a savepoint timing out inside the JobManager).
	if deadline, ok := s.rctx.Deadline(); ok && !time.Now().Before(deadline) {
		// Asking again one that answered before as a standby or could
		// not be reached: the search ends with what each said. Only a
		// JobManager asked for the first time is blamed for the time.
		if s.heard(addr) {
			return attempt{expired: true}
		}
		if !connected {
			s.ended = true
			return attempt{unreachable: fmt.Sprintf("no connection within %s", s.timeout)}
		}
		return attempt{err: failf("the JobManager at %s did not answer within %s (set --timeout)", addr, s.timeout)}
	}
	st := status.Convert(err)
	if st.Code() == codes.Unavailable {
		// TLS refusals do not go away by asking again: say what to set.
		if e := security.ExplainAPIError(err, a.apiTLS); e != err {
			why := strings.TrimSuffix(e.Error(), ": "+err.Error())
			if a.apiTLS == nil {
				// Only a guess (a closed connection): another
				// JobManager may still answer.
				return attempt{unreachable: why + ": " + dialReason(st.Message())}
			}
			return attempt{err: failf("%s (the JobManager at %s: %s)", why, addr, dialReason(st.Message()))}
		}
		if !connected {
			return attempt{unreachable: dialReason(st.Message())}
		}
		if vs, ok := ci.trailer[leaderepoch.LeaderAddressKey]; ok {
			return attempt{leaders: vs}
		}
	}
	return attempt{served: true, err: failf("%s", st.Message())}
}

// awaitConnection waits until cc is connected or has failed to connect
// (an RPC then fails at once, with the reason); false when ctx ends first.
func awaitConnection(ctx context.Context, cc *grpc.ClientConn) bool {
	for {
		st := cc.GetState()
		switch st {
		case connectivity.Ready, connectivity.TransientFailure, connectivity.Shutdown:
			return true
		case connectivity.Idle:
			cc.Connect()
		}
		if !cc.WaitForStateChange(ctx, st) {
			return false
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// maxResponseSize bounds what the CLI accepts in one answer.
const maxResponseSize = 64 << 20

// conn returns the connection to addr, creating it on first use.
// grpc.NewClient does not dial: the first RPC does, so commands that need
// no JobManager (version, help) never touch the network.
func (a *app) conn(addr string) (*grpc.ClientConn, error) {
	if cc := a.conns[addr]; cc != nil {
		return cc, nil
	}
	if len(a.conns) >= maxConns {
		return nil, fmt.Errorf("not asked: weir asked %d JobManagers already", maxConns)
	}
	creds := insecure.NewCredentials()
	if a.apiTLS != nil {
		creds = a.apiTLS.ClientCredentials()
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithUnaryInterceptor(recordCall),
		// The status of a job at the subtask limit (jobgraph.MaxSubtasks:
		// 100,000 task rows of about 100 bytes) is past gRPC's default 4 MiB;
		// the answers come from the JobManager the user chose to talk to.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseSize)),
		// gRPC's reconnect backoff grows to 2 minutes; a JobManager that
		// restarts while weir waits for a leader is tried again within
		// a second.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 20 * time.Second, // gRPC's default
		}))
	if err != nil {
		return nil, fmt.Errorf("invalid address: %v", err)
	}
	if a.conns == nil {
		a.conns = make(map[string]*grpc.ClientConn)
	}
	a.conns[addr] = cc
	return cc, nil
}

func (a *app) closeConns() {
	for addr, cc := range a.conns {
		_ = cc.Close()
		delete(a.conns, addr)
	}
	if a.leaders != nil {
		_ = a.leaders.Close()
		a.leaders = nil
	}
}

// callInfo receives, through an RPC's context, the server the RPC reached
// and the trailer it answered with.
type callInfo struct {
	peer    peer.Peer
	trailer metadata.MD
}

type callInfoKey struct{}

// recordCall records the RPC's peer and trailer. gRPC sets the peer only if
// the RPC got a stream to the server, which is how an error the server
// answered is told apart from a connection that failed: both can be
// Unavailable.
func recordCall(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		opts = append(opts, grpc.Peer(&ci.peer), grpc.Trailer(&ci.trailer))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
