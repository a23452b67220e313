package cli

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/leaderepoch"
	"github.com/weirstream/weir/proto/weirpb"
)

// standby makes a fake JobService a standby JobManager, as the JobManager
// is one: every call but ListJobManagers is refused with UNAVAILABLE and
// a leader's address in the trailer, the n-th refusal naming names[n]
// (the last one repeats; "" for no leader). From refusal hangFrom on (if
// not 0) it answers nothing until the call's deadline: a standby that
// stopped.
type standby struct {
	mu       sync.Mutex
	names    []string
	refused  int
	hangFrom int
}

func (s *standby) name(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = names
}

func (s *standby) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

func (s *standby) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod == weirpb.JobService_ListJobManagers_FullMethodName {
		return handler(ctx, req)
	}
	s.mu.Lock()
	leader := s.names[min(s.refused, len(s.names)-1)]
	s.refused++
	hang := s.hangFrom > 0 && s.refused >= s.hangFrom
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs(leaderepoch.LeaderAddressKey, leader)); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unavailable, "not the leader")
}

// serveStandby starts a standby whose refusals name names in turn.
func serveStandby(t *testing.T, f *fakeJobService, names ...string) (string, *standby) {
	t.Helper()
	s := &standby{names: names}
	return serve(t, f, grpc.UnaryInterceptor(s.intercept)), s
}

// closedAddrs returns n distinct loopback addresses nothing listens on.
func closedAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lis []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = append(lis, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range lis {
		l.Close()
	}
	return addrs
}

// silentAddr returns a loopback address that accepts TCP connections (the
// kernel's backlog does) but never answers: a JobManager that connects but
// never speaks, as a stopped process does.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func listsJobs() *fakeJobService {
	return &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{Jobs: []*weirpb.JobSummary{{Id: "7f3c2a1e", Name: "wordcount", State: "RUNNING"}}}, nil
	}}
}

const jobsTable = "" +
	"ID        NAME       STATE    START TIME  DURATION\n" +
	"7f3c2a1e  wordcount  RUNNING  -           -\n"

func withEnv(env map[string]string) func(*app) {
	return func(a *app) { a.getenv = func(k string) string { return env[k] } }
}

// Bad lists are usage errors naming the entry, from the flag while flags
// are parsed, from the environment when a command needs a JobManager.
func TestJobManagerListErrors(t *testing.T) {
	seventeen := make([]string, 17)
	for i := range seventeen {
		seventeen[i] = "jm" + strconv.Itoa(i) + ":6123"
	}
	longHost := strings.Repeat("h", 254) + ":6123"
	for _, tc := range []struct{ value, want string }{
		{"jm1:6123,,jm2:6123", "entry 2 is empty"},
		{"jm1:6123,", "entry 2 is empty"},
		{",jm1:6123", "entry 1 is empty"},
		{"", "empty: want host:port, or host1:port,host2:port"},
		{" ", "empty: want host:port, or host1:port,host2:port"},
		{"jm1:6123,jm2:6123,jm1:6123", `entry 3 "jm1:6123" repeats entry 1`},
		{"jm1:6123, jm1:6123", `entry 2 "jm1:6123" repeats entry 1`},
		{"jm1", "not host:port (missing port in address)"},
		{"jm1:6123,jm2", `entry 2 "jm2": not host:port (missing port in address)`},
		{"jm1:6123:7", "not host:port (too many colons in address)"},
		{"jm1:0", `port "0" is not a number from 1 to 65535`},
		{"jm1:65536", `port "65536" is not a number from 1 to 65535`},
		{"jm1:6123,jm2:http", `entry 2 "jm2:http": port "http" is not a number from 1 to 65535`},
		{":6123", "no host before the port"},
		{"jm/1:6123", `host "jm/1" is not a host name or IP address`},
		{"jm1:6123,unix:///x:1", `entry 2 "unix:///x:1": not host:port (too many colons in address)`},
		{longHost, "host of 254 bytes: the limit is 253"},
		{strings.Join(seventeen, ","), "17 entries: the limit is 16 JobManagers"},
	} {
		r := weir(t, "", "--jobmanager", tc.value, "list")
		want := "weir: invalid argument " + strconv.Quote(tc.value) + ` for "-m, --jobmanager" flag: ` + tc.want + "\nUsage:\n  weir list [-r] [-s] [-a] [flags]\n"
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("--jobmanager %q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr starting with:\n%s", tc.value, r.code, r.stdout, r.stderr, want)
		}
	}

	env := withEnv(map[string]string{EnvJobManager: "jm1:6123,,jm2:6123"})
	r := weirApp(t, env, "", "list")
	want := "weir: WEIR_JOBMANAGER \"jm1:6123,,jm2:6123\": entry 2 is empty\nUsage:\n  weir list [-r] [-s] [-a] [flags]\n"
	if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr starting with:\n%s", r.code, r.stdout, r.stderr, want)
	}
	// Commands without a JobManager do not care; --jobmanager replaces it.
	if r := weirApp(t, env, "", "version"); r.code != 0 {
		t.Errorf("weir version with a bad %s: exit %d, stderr %q", EnvJobManager, r.code, r.stderr)
	}
	addr := serve(t, listsJobs())
	weirApp(t, env, addr, "list").check(t, jobsTable, "", 0)
	// Spaces around entries are dropped.
	weir(t, " "+addr+" , "+closedAddr(t), "list").check(t, jobsTable, "", 0)
}

// A standby's answer is followed to the leader, and the call reaches the
// leader once: a submit through a standby is submitted once.
func TestStandbyRedirectsToLeader(t *testing.T) {
	leader := listsJobs()
	leader.submit = submitAs("7f3c2a1e")
	laddr := serve(t, leader)
	saddr, sb := serveStandby(t, &fakeJobService{}, laddr)

	weir(t, saddr, "list").check(t, jobsTable, "", 0)
	weir(t, saddr+","+laddr, "list").check(t, jobsTable, "", 0)
	weir(t, saddr, "run", "-d", writeJobFile(t)).check(t, "7f3c2a1e\n", "", 0)
	if n := sb.refusals(); n != 3 {
		t.Errorf("the standby refused %d calls, want 3", n)
	}
	var submits int
	for _, req := range leader.received() {
		if _, ok := req.(*weirpb.SubmitJobRequest); ok {
			submits++
		}
	}
	if submits != 1 {
		t.Errorf("the leader received %d SubmitJob, want 1", submits)
	}
}

// Within one invocation, the leader found once is asked first from then
// on: `weir run` through a standby polls the leader directly.
func TestLeaderAskedFirstAfterRedirect(t *testing.T) {
	s := &scriptedJob{steps: []*weirpb.JobDetails{
		job("RUNNING", task("source -> sink", "RUNNING", 10)),
		job("RUNNING", task("source -> sink", "RUNNING", 20)),
		job("FINISHED", task("source -> sink", "FINISHED", 30)),
	}}
	laddr := serve(t, &fakeJobService{submit: submitAs("7f3c2a1e"), get: s.get})
	saddr, sb := serveStandby(t, &fakeJobService{}, laddr)
	r := weir(t, saddr, "run", "-o", "json", writeJobFile(t))
	if r.code != 0 {
		t.Fatalf("weir run: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := sb.refusals(); n != 1 {
		t.Errorf("the standby refused %d calls, want only the submit", n)
	}
}

// An unreachable JobManager is left for the next in the list.
func TestUnreachableJobManagerSkipped(t *testing.T) {
	closed := closedAddrs(t, 2)
	laddr := serve(t, listsJobs())
	weir(t, closed[0]+","+laddr, "list").check(t, jobsTable, "", 0)
	weir(t, closed[0]+","+closed[1], "list").check(t, "", "weir: cannot reach any JobManager: "+
		closed[0]+": connect: connection refused; "+closed[1]+": connect: connection refused "+
		"(are they running? set --jobmanager or WEIR_JOBMANAGER)\n", 1)
	// One address: the message it always had.
	weir(t, closed[0], "list").check(t, "", "weir: cannot reach the JobManager at "+closed[0]+
		": connect: connection refused (is it running? set --jobmanager or WEIR_JOBMANAGER)\n", 1)
}

// A JobManager that accepts the connection but never speaks (a stopped
// process) is left after the connect timeout when there is another.
func TestSilentJobManagerSkipped(t *testing.T) {
	laddr := serve(t, listsJobs())
	s1, s2 := silentAddr(t), silentAddr(t)
	connectIn := func(d time.Duration) func(*app) { return func(a *app) { a.connectTimeout = d } }
	weirApp(t, connectIn(time.Second), s1+","+laddr, "list").check(t, jobsTable, "", 0)
	weirApp(t, connectIn(100*time.Millisecond), s1+","+s2, "list").check(t, "", "weir: cannot reach any JobManager: "+
		s1+": no connection within 100ms; "+s2+": no connection within 100ms "+
		"(are they running? set --jobmanager or WEIR_JOBMANAGER)\n", 1)
}

// Any answer but a standby's is final, errors included: the call is not
// sent to the next JobManager, which might act on it a second time.
func TestAnswerIsFinal(t *testing.T) {
	busy := serve(t, &fakeJobService{cancel: func(*weirpb.CancelJobRequest) (*weirpb.CancelJobResponse, error) {
		return nil, status.Error(codes.Unavailable, "the JobManager is recovering its jobs, retry shortly")
	}})
	next := &fakeJobService{}
	naddr := serve(t, next)
	weir(t, busy+","+naddr, "cancel", "j1").check(t, "", "weir: the JobManager is recovering its jobs, retry shortly\n", 1)
	if got := next.received(); len(got) != 0 {
		t.Errorf("the next JobManager received %v", got)
	}
}

// While no JobManager leads, weir asks again until --timeout; the failure
// says what each JobManager said.
func TestNoLeaderRetried(t *testing.T) {
	laddr := serve(t, listsJobs())
	saddr, sb := serveStandby(t, &fakeJobService{}, "", "", "", laddr)
	weir(t, saddr, "list").check(t, jobsTable, "", 0)
	if n := sb.refusals(); n != 4 {
		t.Errorf("the standby refused %d calls, want 4", n)
	}

	closed := closedAddr(t)
	saddr, sb = serveStandby(t, &fakeJobService{}, "")
	weir(t, saddr+","+closed, "--timeout", "300ms", "list").check(t, "", "weir: found no leading JobManager within 300ms: "+
		saddr+": standby, no leader now; "+closed+": connect: connection refused (set --timeout to wait longer)\n", 1)
	if n := sb.refusals(); n < 2 {
		t.Errorf("the standby was asked %d times, want it asked again", n)
	}

	// The deadline passing while a standby is asked again: what it said
	// before stands.
	sb.mu.Lock()
	sb.hangFrom = sb.refused + 2
	sb.mu.Unlock()
	weir(t, saddr, "--timeout", "300ms", "list").check(t, "", "weir: found no leading JobManager within 300ms: "+
		saddr+": standby, no leader now (set --timeout to wait longer)\n", 1)
	sb.mu.Lock()
	sb.hangFrom = 0
	sb.mu.Unlock()

	// A leader that is gone while the standby still names it (its lease
	// has not expired yet): asked again, until the standby names another.
	sb.name(closed, closed, laddr)
	weir(t, saddr, "list").check(t, jobsTable, "", 0)
	sb.name(closed)
	weir(t, saddr, "--timeout", "300ms", "list").check(t, "", "weir: found no leading JobManager within 300ms: "+
		saddr+": standby, the leader is "+closed+"; "+closed+": connect: connection refused (set --timeout to wait longer)\n", 1)

	// Two standbys naming each other, and one naming nonsense.
	a, sa := serveStandby(t, &fakeJobService{}, "")
	b, _ := serveStandby(t, &fakeJobService{}, a)
	sa.name(b)
	weir(t, a, "--timeout", "300ms", "list").check(t, "", "weir: found no leading JobManager within 300ms: "+
		a+": standby, the leader is "+b+"; "+b+": standby, the leader is "+a+" (set --timeout to wait longer)\n", 1)
	sa.name("jm 1")
	weir(t, a, "--timeout", "300ms", "list").check(t, "", "weir: found no leading JobManager within 300ms: "+
		a+`: standby, names the leader "jm 1": not host:port (missing port in address) (set --timeout to wait longer)`+"\n", 1)
}

// Redirects are followed up to maxRedirects from one JobManager.
func TestRedirectLimit(t *testing.T) {
	last := &fakeJobService{}
	addrs := []string{serve(t, last)}
	var refusals []*standby
	for range 4 {
		addr, sb := serveStandby(t, &fakeJobService{}, addrs[0])
		addrs = append([]string{addr}, addrs...)
		refusals = append(refusals, sb)
	}
	weir(t, addrs[0], "list").check(t, "", "weir: gave up after following 3 redirects: "+
		addrs[0]+": standby, the leader is "+addrs[1]+"; "+
		addrs[1]+": standby, the leader is "+addrs[2]+"; "+
		addrs[2]+": standby, the leader is "+addrs[3]+"; "+
		addrs[3]+": standby, the leader is "+addrs[4]+"\n", 1)
	if got := last.received(); len(got) != 0 {
		t.Errorf("the JobManager after the limit received %v", got)
	}
	// Three redirects are followed.
	last.list = listsJobs().list
	weir(t, addrs[1], "list").check(t, jobsTable, "", 0)
}

func TestJobManagers(t *testing.T) {
	f := &fakeJobService{jobManagers: func() (*weirpb.ListJobManagersResponse, error) {
		return &weirpb.ListJobManagersResponse{Jobmanagers: []*weirpb.JobManagerInfo{
			{Address: "10.0.0.7:6123", SinceUnixMs: ms(testNow.Add(-80 * time.Second))},
			{Address: "10.0.0.5:6123", Leader: true, SinceUnixMs: ms(testNow.Add(-83 * time.Second)), Epoch: 42},
			{Address: "10.0.0.6:6123"},
		}}, nil
	}}
	// A standby answers this one itself.
	addr, _ := serveStandby(t, f, "10.0.0.5:6123")
	weir(t, addr, "jobmanagers").check(t, ""+
		"ADDRESS        ROLE     SINCE\n"+
		"10.0.0.5:6123  leader   2025-03-01 11:58:37\n"+
		"10.0.0.6:6123  standby  -\n"+
		"10.0.0.7:6123  standby  2025-03-01 11:58:40\n", "", 0)
	weir(t, addr, "jobmanagers", "-o", "json").check(t, `[
  {
    "address": "10.0.0.5:6123",
    "leader": true,
    "since": "2025-03-01T11:58:37.000Z",
    "epoch": 42
  },
  {
    "address": "10.0.0.6:6123",
    "leader": false,
    "epoch": 0
  },
  {
    "address": "10.0.0.7:6123",
    "leader": false,
    "since": "2025-03-01T11:58:40.000Z",
    "epoch": 0
  }
]
`, "", 0)

	empty := serve(t, &fakeJobService{jobManagers: func() (*weirpb.ListJobManagersResponse, error) {
		return &weirpb.ListJobManagersResponse{}, nil
	}})
	weir(t, empty, "jm").check(t, "", "No JobManagers.\n", 0)
	weir(t, empty, "jobmanagers", "-o", "json").check(t, "[]\n", "", 0)
	// A JobManager of an older weir.
	weir(t, serve(t, &fakeJobService{}), "jobmanagers").check(t, "", "weir: method ListJobManagers not implemented\n", 1)
}

// stubLeaders is an HA service whose leader the test sets.
type stubLeaders struct {
	mu     sync.Mutex
	leader []string // the n-th read's answer; the last repeats
	err    error
	reads  int
	closed bool
}

func (s *stubLeaders) Leader(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leader[min(s.reads, len(s.leader)-1)]
	s.reads++
	return l, s.err
}

func (s *stubLeaders) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *stubLeaders) services(t *testing.T) func(*app) {
	return func(a *app) {
		a.services.HA = func(cfg *config.Config) (LeaderReader, error) {
			if got := cfg.String(config.HighAvailabilityClusterID); got != "c1" {
				t.Errorf("the HA service was given cluster id %q, want c1", got)
			}
			return s, nil
		}
	}
}

var haKeys = []string{"-D", "high-availability.type=etcd", "-D", "high-availability.etcd.endpoints=e1:2379,e2:2379",
	"-Dhigh-availability.cluster-id=c1"}

// With the high-availability keys, the HA service says who leads;
// --jobmanager wins over them, and they over WEIR_JOBMANAGER.
func TestLeaderFromHA(t *testing.T) {
	laddr := serve(t, listsJobs())
	closed := closedAddr(t)
	s := &stubLeaders{leader: []string{laddr}}
	weirApp(t, s.services(t), "", append(haKeys, "list")...).check(t, jobsTable, "", 0)
	if !s.closed || s.reads != 1 {
		t.Errorf("the HA service was read %d times and closed %v, want 1 and true", s.reads, s.closed)
	}

	both := func(a *app) {
		s.services(t)(a)
		withEnv(map[string]string{EnvJobManager: closed})(a)
	}
	weirApp(t, both, "", append(haKeys, "list")...).check(t, jobsTable, "", 0)
	never := func(a *app) {
		a.services.HA = func(*config.Config) (LeaderReader, error) {
			t.Error("the HA service was asked despite --jobmanager")
			return nil, errors.New("asked")
		}
	}
	weirApp(t, never, laddr, append(haKeys, "list")...).check(t, jobsTable, "", 0)

	// No leader for a while, then one; and a leader that stands by now.
	s = &stubLeaders{leader: []string{"", "", laddr}}
	weirApp(t, s.services(t), "", append(haKeys, "list")...).check(t, jobsTable, "", 0)
	saddr, _ := serveStandby(t, &fakeJobService{}, laddr)
	s = &stubLeaders{leader: []string{saddr}}
	weirApp(t, s.services(t), "", append(haKeys, "list")...).check(t, jobsTable, "", 0)

	s = &stubLeaders{leader: []string{""}}
	weirApp(t, s.services(t), "", append(haKeys, "--timeout", "300ms", "list")...).check(t, "",
		"weir: found no leading JobManager within 300ms: etcd at e1:2379,e2:2379: no leader now (set --timeout to wait longer)\n", 1)
	s = &stubLeaders{leader: []string{closed}}
	weirApp(t, s.services(t), "", append(haKeys, "--timeout", "300ms", "list")...).check(t, "",
		"weir: found no leading JobManager within 300ms: etcd at e1:2379,e2:2379: the leader is "+closed+"; "+
			closed+": connect: connection refused (set --timeout to wait longer)\n", 1)
	s = &stubLeaders{leader: []string{""}, err: errors.New("etcdserver: permission denied")}
	weirApp(t, s.services(t), "", append(haKeys, "list")...).check(t, "",
		"weir: cannot find the leader in etcd at e1:2379,e2:2379: etcdserver: permission denied\n", 1)

	weir(t, "", append(haKeys, "list")...).check(t, "",
		"weir: high-availability.type etcd: this weir has no high-availability services; set --jobmanager\n", 1)
	weir(t, "", "-D", "high-availability.type=zookeeper", "list").check(t, "",
		`weir: -D: invalid value "zookeeper" for key "high-availability.type": want one of none, etcd`+"\n", 1)
}

// The hint after an interrupted `weir run` repeats what chose the
// JobManager, quoted for a shell.
func TestCancelHint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "weir cancel j1"},
		{[]string{"--jobmanager", "jm1:6123,[::1]:6123"}, "weir --jobmanager 'jm1:6123,[::1]:6123' cancel j1"},
		{[]string{"-D", "high-availability.type=etcd", "-D", "high-availability.etcd.endpoints=e1:2379, e2:2379"},
			"weir -D high-availability.type=etcd -D 'high-availability.etcd.endpoints=e1:2379, e2:2379' cancel j1"},
		{[]string{"--config", "/etc/weir/it's.yaml"}, "weir cancel j1"}, // no such file: no HA
		{[]string{"-D", "high-availability.type=none"}, "weir cancel j1"},
	} {
		var stdout, stderr syncBuffer
		a := testApp(&stdout, &stderr, nil)
		root := a.newRootCommand()
		if err := root.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := a.cancelHint("j1"); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.args, got, tc.want)
		}
	}
}
