package taskmanager

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
)

// A TaskManager exports its network buffers and queues labelled with its
// id, and the whole scrape passes promtool's linter.
func TestNetworkMetrics(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	reg := prometheus.NewRegistry()
	tm := startTM(t, jm.addr, reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "weir_taskmanager_network_buffers") || strings.HasSuffix(mf.GetName(), "_queue_length") {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	// No task: nothing allocated, nothing queued.
	id := `{tm_id="` + tm.ID() + `"}`
	var want strings.Builder
	for _, l := range []string{
		"weir_taskmanager_network_buffers" + id + " 0",
		"weir_taskmanager_network_buffers_available" + id + " 0",
		"weir_taskmanager_network_buffers_in_use" + id + " 0",
		"weir_taskmanager_network_input_queue_length" + id + " 0",
		"weir_taskmanager_network_output_queue_length" + id + " 0",
	} {
		want.WriteString(l + "\n")
	}
	var got strings.Builder
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			got.WriteString(l + "\n")
		}
	}
	if got.String() != want.String() {
		t.Fatalf("network series:\n%s\nwant:\n%s", got.String(), want.String())
	}
}
