package taskmanager

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
)

// TestMetricsPprofWiring checks that metrics.pprof.enabled reaches the
// TaskManager's metrics server (pkg/metrics tests the endpoints themselves).
func TestMetricsPprofWiring(t *testing.T) {
	for _, tc := range []struct {
		enabled string
		want    int
	}{{"false", http.StatusNotFound}, {"true", http.StatusOK}} {
		t.Run(tc.enabled, func(t *testing.T) {
			cfg, _, err := config.FromMap(map[string]string{
				"jobmanager.rpc.address":     "127.0.0.1",
				"jobmanager.rpc.port":        "1", // never reached: the test needs no JobManager
				"metrics.reporter.prom.port": "0",
				"metrics.pprof.enabled":      tc.enabled,
			})
			if err != nil {
				t.Fatal(err)
			}
			tm, err := New(cfg, zap.NewNop(), Options{Registry: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			defer tm.Close()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get("http://" + tm.MetricsAddr() + "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("metrics.pprof.enabled=%s: /debug/pprof/: %d, want %d", tc.enabled, resp.StatusCode, tc.want)
			}
		})
	}
}
