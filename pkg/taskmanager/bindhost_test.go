package taskmanager

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
)

// With taskmanager.bind-host the endpoints listen on that address only,
// while the JobManager and other TaskManagers are told taskmanager.host:
// bound to 127.0.0.1, advertised as 127.0.0.2 (both loopback on Linux, so a
// connection to the advertised address is refused by this listener).
func TestBindHostIsNotAdvertised(t *testing.T) {
	cfg, _, err := config.FromMap(map[string]string{
		"jobmanager.rpc.address":     "127.0.0.1",
		"jobmanager.rpc.port":        "1", // never reached: the test needs no JobManager
		"metrics.reporter.prom.port": "0",
		"taskmanager.bind-host":      "127.0.0.1",
		"taskmanager.host":           "127.0.0.2",
	})
	if err != nil {
		t.Fatal(err)
	}
	tm, err := New(cfg, zap.NewNop(), Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	for name, addr := range map[string]string{"rpc": tm.RPCAddr(), "data": tm.DataAddr()} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.2" {
			t.Errorf("%s address %q: advertised host %q, want 127.0.0.2 (%v)", name, addr, host, err)
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 5*time.Second)
		if err != nil {
			t.Errorf("%s: dial the bind host: %v", name, err)
		} else {
			c.Close()
		}
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
			t.Errorf("%s: the advertised address %s accepted a connection: the listener is not bound to 127.0.0.1 only", name, addr)
		}
	}
	// Channels from this TaskManager's own partitions are told apart by the
	// advertised address: they stay local (no TCP to itself).
	if tm.net.Addr() != tm.DataAddr() {
		t.Errorf("the network's own address %s is not the advertised %s: local channels would go through TCP", tm.net.Addr(), tm.DataAddr())
	}
	if host, _, _ := net.SplitHostPort(tm.MetricsAddr()); host != "127.0.0.1" {
		t.Errorf("metrics listen on %s, want the bind host 127.0.0.1", tm.MetricsAddr())
	}
}
