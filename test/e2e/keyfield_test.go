package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A record without the key field of a hash edge into an aggregate fails the
// job (as a Flink KeySelector returning null does), naming the keyed
// operator, the key field and the record; it is never grouped under a null
// key. docs/jobs.md and docs/architecture.md quote this message.
func TestMissingKeyFieldFailsTheJob(t *testing.T) {
	c := newCluster(t, 1, 2)
	job := c.writeJob("nokey.yaml", fmt.Sprintf(`
name: nokey
parallelism: 1
config: {restart-strategy.type: none}
operators:
  - id: numbers
    type: sequence
    properties: {keys: 1, count: 10}
  - id: strip
    type: map
    input: numbers
    properties: {expr: '{"seq": record.seq}'}
  - id: counted
    type: aggregate
    input: {from: strip, partition: hash, key: key}
    properties: {aggregates: {count: count}}
  - id: out
    type: file-sink
    input: counted
    properties: {path: %q}
`, filepath.Join(c.dir, "out")))
	id := strings.TrimSpace(c.mustWeir("run", "-d", job))
	st := c.waitState(id, 60*time.Second, "FAILED")
	want := `numbers -> strip subtask 0 failed: operator "counted": record has no key field "key": {"seq":0}`
	if st.StatusMessage != want {
		t.Errorf("status message\n got %q\nwant %q", st.StatusMessage, want)
	}
}
