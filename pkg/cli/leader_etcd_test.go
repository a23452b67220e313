package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/internal/etcdtest"
	"github.com/weirstream/weir/proto/weirpb"
)

// etcdServices wires package ha as cmd/weir does.
func etcdServices(a *app) {
	a.services.HA = func(cfg *config.Config) (LeaderReader, error) {
		ecfg, err := ha.EtcdConfigFrom(cfg, "", nil)
		if err != nil {
			return nil, err
		}
		e, err := ha.NewEtcd(ecfg)
		if err != nil {
			return nil, err
		}
		return etcdLeaders{e}, nil
	}
}

type etcdLeaders struct{ *ha.Etcd }

func (e etcdLeaders) Leader(ctx context.Context) (string, error) {
	l, err := e.Etcd.Leader(ctx)
	return l.Address, err
}

// jobManagerIn makes addr a JobManager of cluster in etcd: its session and
// its election key. campaign blocks until it leads.
func jobManagerIn(t *testing.T, srv *etcdtest.Server, cluster, addr string) (e *ha.Etcd, campaign func() error) {
	t.Helper()
	e, err := ha.NewEtcd(ha.EtcdConfig{Endpoints: srv.Endpoints(), TLS: srv.ClientTLS(), ClusterID: cluster, StorageDir: t.TempDir(), Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, err := e.StartSession(ctx); err != nil {
		t.Fatal(err)
	}
	return e, func() error {
		_, err := e.Campaign(ctx)
		return err
	}
}

// weir finds the leader through etcd with the JobManagers' keys, and a
// new one after a failover.
func TestLeaderFromEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	eps := strings.Join(srv.Endpoints(), ",")
	keys := func(cluster string, args ...string) []string {
		return append([]string{"-D", "high-availability.type=etcd", "-D", "high-availability.etcd.endpoints=" + eps,
			"-D", "high-availability.cluster-id=" + cluster}, args...)
	}

	first := serve(t, listsJobs())
	second := serve(t, &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{Jobs: []*weirpb.JobSummary{{Id: "0b1d", Name: "etl", State: "FINISHED"}}}, nil
	}})
	a, campaignA := jobManagerIn(t, srv, "c1", first)
	if err := campaignA(); err != nil {
		t.Fatal(err)
	}
	_, campaignB := jobManagerIn(t, srv, "c1", second)
	led := make(chan error, 1)
	go func() { led <- campaignB() }()

	weirApp(t, etcdServices, "", keys("c1", "list")...).check(t, jobsTable, "", 0)
	// The leader resigns; the standby leads, and weir asks it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.CloseSession(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-led; err != nil {
		t.Fatal(err)
	}
	weirApp(t, etcdServices, "", keys("c1", "list", "-a")...).check(t, ""+
		"ID    NAME  STATE     START TIME  DURATION\n"+
		"0b1d  etl   FINISHED  -           -\n", "", 0)

	// A cluster without a leader, and one whose leader is gone but
	// still holds its lease.
	weirApp(t, etcdServices, "", keys("c2", "--timeout", "300ms", "list")...).check(t, "",
		"weir: found no leading JobManager within 300ms: etcd at "+eps+": no leader now (set --timeout to wait longer)\n", 1)
	gone := closedAddr(t)
	_, campaignGone := jobManagerIn(t, srv, "c3", gone)
	if err := campaignGone(); err != nil {
		t.Fatal(err)
	}
	weirApp(t, etcdServices, "", keys("c3", "--timeout", "300ms", "list")...).check(t, "",
		"weir: found no leading JobManager within 300ms: etcd at "+eps+": the leader is "+gone+"; "+
			gone+": connect: connection refused (set --timeout to wait longer)\n", 1)

	// etcd that does not answer.
	srv.Stop()
	defer srv.Cont()
	weirApp(t, etcdServices, "", keys("c1", "--timeout", "300ms", "list")...).check(t, "",
		"weir: etcd at "+eps+" did not answer within 300ms (high-availability.etcd.endpoints; set --timeout)\n", 1)
}

// When weir cannot find the leader because the TLS handshakes with etcd
// fail, it says why, not only that etcd did not answer.
func TestLeaderFromEtcdOverTLS(t *testing.T) {
	srv := etcdtest.StartWith(t, etcdtest.Options{TLS: true, ClientCertAuth: true})
	ep := srv.Endpoints()[0]
	args := func(more ...string) []string {
		return append([]string{"-D", "high-availability.type=etcd", "-D", "high-availability.etcd.endpoints=" + srv.ClientURL,
			"-D", "high-availability.cluster-id=tls", "-D", "high-availability.etcd.tls.ca=" + srv.CAFile}, more...)
	}
	addr := serve(t, listsJobs())
	_, campaign := jobManagerIn(t, srv, "tls", addr)
	if err := campaign(); err != nil {
		t.Fatal(err)
	}
	weirApp(t, etcdServices, "", args("-D", "high-availability.etcd.tls.cert="+srv.ClientCertFile,
		"-D", "high-availability.etcd.tls.key="+srv.ClientKeyFile, "list")...).check(t, jobsTable, "", 0)
	weirApp(t, etcdServices, "", args("--timeout", "3s", "list")...).check(t, "",
		"weir: etcd at "+srv.ClientURL+" did not answer within 3s (high-availability.etcd.endpoints; set --timeout): "+
			"TLS handshake with etcd at "+ep+" failed: the server requires a client certificate and high-availability.etcd.tls.cert is not set\n", 1)
}
