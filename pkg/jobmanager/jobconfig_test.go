package jobmanager

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/proto/weirpb"
)

// A job's config: is applied as promised: its parallelism.default is the
// job's default parallelism (over the cluster's), and its unknown keys come
// back to the submitter, each once and with the closest known key, and are
// logged once.
func TestJobConfigParallelismAndWarnings(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	c := startJM(t, zap.New(core), map[string]string{"parallelism.default": "1"})
	a := startTM(t, c.jm.Addr(), "tm-a", 4)
	job := `name: chain
config:
  parallelism.default: 2
  execution.checkpointing.intervall: 10 s
  rest.port: 8081
operators:
- id: src
  type: jmtest-source
- id: map
  type: jmtest-map
  input: src
- id: sink
  type: jmtest-sink
  input: map
`
	resp, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(job), FileName: "job.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`job.yaml: config: unknown configuration key "execution.checkpointing.intervall" (did you mean "execution.checkpointing.interval"?)`,
		`job.yaml: config: configuration keys not applicable to weir, ignored: rest.port (Flink's REST API and web UI: weir's API is gRPC on jobmanager.rpc.port (the weir command))`,
	}
	if !slices.Equal(resp.Warnings, want) {
		t.Errorf("warnings %q\nwant %q", resp.Warnings, want)
	}
	deployed := a.receive(2)
	if deployed["0/0#0"] == nil || deployed["0/1#0"] == nil || deployed["0/0#0"].Parallelism != 2 {
		t.Errorf("deployed %v, want subtasks 0/0 and 0/1 of parallelism 2", deployed)
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("job file warning").Len() < len(want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var logged []string
	for _, e := range logs.FilterMessage("job file warning").All() {
		logged = append(logged, e.ContextMap()["warning"].(string))
	}
	if !slices.Equal(logged, want) {
		t.Errorf("logged %q\nwant each warning once: %q", logged, want)
	}
}

func TestClipWarnings(t *testing.T) {
	ws := make([]string, maxWarnings+5)
	got := clipWarnings(ws)
	if len(got) != maxWarnings+1 || got[maxWarnings] != "5 more warnings not shown" || len(clipWarnings(ws[:3])) != 3 {
		t.Errorf("clipWarnings: %d, last %q", len(got), got[len(got)-1])
	}
}
