package builtin

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
)

// TestBoundariesDeployAsSubmitted takes values at and around the limits of
// the builtin operators' properties through the whole trip of a job: parse
// and validation at submission, the JSON of the deployment descriptor, its
// decoding on the TaskManager and the operator's constructor there. What
// is accepted is built with exactly the value written (no float64
// rounding), and what is out of range is rejected at submission, never at
// deployment.
func TestBoundariesDeployAsSubmitted(t *testing.T) {
	type cfg = any
	seq := func(keys, count int64) cfg { return sequenceConfig{keys: keys, count: count} }
	tests := []struct {
		typ, props string
		want       cfg    // the deployed config; nil when rejected
		err        string // the submission error, when rejected
	}{
		{"sequence", "{keys: 1}", seq(1, 0), ""},
		{"sequence", "{keys: 9007199254740992}", seq(1<<53, 0), ""},
		{"sequence", "{keys: 9007199254740993}", seq(1<<53+1, 0), ""},
		{"sequence", "{keys: 999999999999999999, count: 999999999999999999}", seq(1e18-1, 1e18-1), ""},
		{"sequence", "{keys: 1000000000000000000, count: 1000000000000000000}", seq(1e18, 1e18), ""},
		{"sequence", "{keys: 1e15}", seq(1e15, 0), ""},
		{"sequence", "{keys: 1.0e18}", seq(1e18, 0), ""},
		{"sequence", "{keys: 0}", nil, `property "keys": want an integer between 1 and 1000000000000000000, got 0`},
		{"sequence", "{keys: 1000000000000000001}", nil, `property "keys": want an integer between 1 and 1000000000000000000, got 1000000000000000001`},
		{"sequence", "{keys: 9223372036854775807}", nil, `property "keys": want an integer between 1 and 1000000000000000000, got 9223372036854775807`},
		{"sequence", "{keys: 9223372036854775808}", nil, `property "keys": want an integer, got 9223372036854775808`},
		{"sequence", "{keys: 1e19}", nil, `property "keys": want an integer, got 1e+19`},
		{"sequence", "{keys: 1, count: -1}", nil, `property "count": want an integer between 0 and 1000000000000000000, got -1`},
		{"sequence", "{keys: 1, count: 1000000000000000001}", nil, `property "count": want an integer between 0 and 1000000000000000000, got 1000000000000000001`},
		{"sequence", "{keys: 1, rate: 0.001}", sequenceConfig{keys: 1, rate: 0.001}, ""},
		{"sequence", "{keys: 1, rate: 1000000000}", sequenceConfig{keys: 1, rate: 1e9}, ""},
		{"sequence", "{keys: 1, rate: 1000000001}", nil, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got 1.000000001e+09`},
		{"file-source", "{path: /in, max-line-bytes: 67108864, monitor-interval: 86400000}",
			fileSourceConfig{path: "/in", maxLine: 64 << 20, monitor: 24 * time.Hour}, ""},
		{"file-source", "{path: /in, max-line-bytes: 1, monitor-interval: 100}",
			fileSourceConfig{path: "/in", maxLine: 1, monitor: 100 * time.Millisecond}, ""},
		{"file-source", "{path: /in}", fileSourceConfig{path: "/in", maxLine: 1 << 20}, ""},
		{"file-source", "{path: /in, max-line-bytes: 67108865}", nil, `property "max-line-bytes": want a memory size between 1 byte and 64 mb, got 67108865`},
		{"file-source", "{path: /in, monitor-interval: 86400001}", nil, `property "monitor-interval": want a duration between 100ms and 24h, got 86400001`},
		{"file-source", "{path: /in, monitor-interval: 9223372036854775807}", nil, `property "monitor-interval": want a duration like 500ms, 10 s or 2 min, got 9223372036854775807`},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.props, func(t *testing.T) {
			job := fmt.Sprintf("name: limits\noperators:\n- {id: src, type: %s, properties: %s}\n- {id: out, type: blackhole-sink, input: src}\n", tt.typ, tt.props)
			g, err := jobgraph.Parse([]byte(job), "")
			if tt.want == nil {
				if want := `operator "src" (` + tt.typ + `): ` + tt.err; errString(err) != want {
					t.Fatalf("submission: %q\nwant %q", errString(err), want)
				}
				return
			}
			if err != nil {
				t.Fatalf("submission: %v", err)
			}
			b, err := json.Marshal(g.Operator("src")) // as the scheduler encodes it
			if err != nil {
				t.Fatal(err)
			}
			var op jobgraph.Operator
			if err := jobgraph.DecodeOperator(b, &op); err != nil { // as the task decodes it
				t.Fatal(err)
			}
			ty, _ := operator.Lookup(op.Type)
			src, err := ty.NewSource(op.Properties)
			if err != nil {
				t.Fatalf("deployment of %s: %v", b, err)
			}
			var got cfg
			switch s := src.(type) {
			case *sequenceSource:
				got = s.cfg
			case *fileSource:
				got = s.cfg
			}
			if got != tt.want {
				t.Fatalf("deployed %+v, want %+v (descriptor %s)", got, tt.want, b)
			}
		})
	}
}
