package jobgraph

import (
	"fmt"
	"strings"
	"testing"
)

// renderVertices prints vertices compactly for exact comparison:
//
//	v0 p2 [a b] in() out(0->v1/c#0 hash:k)
func renderVertices(vs []*JobVertex) string {
	var b strings.Builder
	for i, v := range vs {
		if v.Index != i {
			fmt.Fprintf(&b, "INDEX MISMATCH %d != %d\n", v.Index, i)
		}
		ids := make([]string, len(v.Operators))
		for j, op := range v.Operators {
			ids[j] = op.ID
			if op.Parallelism != v.Parallelism {
				fmt.Fprintf(&b, "PARALLELISM MISMATCH %s\n", op.ID)
			}
		}
		fmt.Fprintf(&b, "v%d p%d [%s] in(", v.Index, v.Parallelism, strings.Join(ids, " "))
		for j, in := range v.Inputs {
			if j > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%d<-v%d/%s %s", in.InputIndex, in.FromVertex, in.FromOperator, edge(in.Partition, in.Key))
		}
		b.WriteString(") out(")
		for j, out := range v.Outputs {
			if j > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%d->v%d/%s#%d %s", out.OutputIndex, out.ToVertex, out.ToOperator, out.InputIndex, edge(out.Partition, out.Key))
		}
		b.WriteString(")\n")
	}
	return b.String()
}

func edge(partition, key string) string {
	if key != "" {
		return partition + ":" + key
	}
	return partition
}

// op writes one operator of a test job: "id type parallelism input..."
// where an input is "from" or "from/partition" or "from/hash/key".
func job(ops ...string) string {
	var b strings.Builder
	b.WriteString("name: chain\noperators:\n")
	for _, o := range ops {
		f := strings.Fields(o)
		fmt.Fprintf(&b, "- id: %s\n  type: %s\n  parallelism: %s\n", f[0], f[1], f[2])
		if f[1] == "test-map" {
			b.WriteString("  properties: {expr: ok}\n")
		}
		if len(f) > 3 {
			b.WriteString("  input:\n")
		}
		for _, in := range f[3:] {
			parts := strings.Split(in, "/")
			fmt.Fprintf(&b, "  - from: %s\n", parts[0])
			if len(parts) > 1 {
				fmt.Fprintf(&b, "    partition: %s\n", parts[1])
			}
			if len(parts) > 2 {
				fmt.Fprintf(&b, "    key: %s\n", parts[2])
			}
		}
	}
	return b.String()
}

func TestVertices(t *testing.T) {
	tests := []struct {
		name  string
		ops   []string
		want  string
		slots int
	}{
		{
			name:  "linear chain",
			ops:   []string{"src test-source 2", "m test-map 2 src", "out test-sink 2 m"},
			want:  "v0 p2 [src m out] in() out()\n",
			slots: 2,
		},
		{
			name: "fan-out breaks the chain",
			ops:  []string{"src test-source 2", "a test-sink 2 src", "b test-sink 2 src"},
			want: "v0 p2 [src] in() out(0->v1/a#0 forward 1->v2/b#0 forward)\n" +
				"v1 p2 [a] in(0<-v0/src forward) out()\n" +
				"v2 p2 [b] in(0<-v0/src forward) out()\n",
			slots: 2,
		},
		{
			name: "hash breaks the chain",
			ops:  []string{"src test-source 2", "k test-keyed 2 src/hash/user", "out test-sink 2 k"},
			want: "v0 p2 [src] in() out(0->v1/k#0 hash:user)\n" +
				"v1 p2 [k out] in(0<-v0/src hash:user) out()\n",
			slots: 2,
		},
		{
			name: "rebalance with equal parallelism breaks the chain",
			ops:  []string{"src test-source 2", "out test-sink 2 src/rebalance"},
			want: "v0 p2 [src] in() out(0->v1/out#0 rebalance)\n" +
				"v1 p2 [out] in(0<-v0/src rebalance) out()\n",
			slots: 2,
		},
		{
			name: "different parallelism",
			ops:  []string{"src test-source 4", "m test-map 2 src", "out test-sink 1 m"},
			want: "v0 p4 [src] in() out(0->v1/m#0 rebalance)\n" +
				"v1 p2 [m] in(0<-v0/src rebalance) out(0->v2/out#0 rebalance)\n" +
				"v2 p1 [out] in(0<-v1/m rebalance) out()\n",
			slots: 4,
		},
		{
			name: "multiple inputs",
			ops:  []string{"a test-source 1", "b test-source 1", "u test-map 1 a b/broadcast", "out test-sink 1 u"},
			want: "v0 p1 [a] in() out(0->v2/u#0 forward)\n" +
				"v1 p1 [b] in() out(0->v2/u#1 broadcast)\n" +
				"v2 p1 [u out] in(0<-v0/a forward 1<-v1/b broadcast) out()\n",
			slots: 1,
		},
		{
			name: "diamond, outputs numbered by consumer order then input order",
			ops: []string{
				"src test-source 2",
				"left test-map 2 src",
				"right test-map 2 src/rebalance",
				"join test-keyed 2 right/hash/k left/hash/k",
				"out test-sink 2 join",
			},
			want: "v0 p2 [src] in() out(0->v1/left#0 forward 1->v2/right#0 rebalance)\n" +
				"v1 p2 [left] in(0<-v0/src forward) out(0->v3/join#1 hash:k)\n" +
				"v2 p2 [right] in(0<-v0/src rebalance) out(0->v3/join#0 hash:k)\n" +
				"v3 p2 [join out] in(0<-v2/right hash:k 1<-v1/left hash:k) out()\n",
			slots: 2,
		},
		{
			name: "chain continues after a fan-in head; tail fans out",
			ops: []string{
				"a test-source 3", "b test-source 3",
				"m1 test-map 3 a b", "m2 test-map 3 m1",
				"s1 test-sink 3 m2", "s2 test-sink 1 m2",
			},
			want: "v0 p3 [a] in() out(0->v2/m1#0 forward)\n" +
				"v1 p3 [b] in() out(0->v2/m1#1 forward)\n" +
				"v2 p3 [m1 m2] in(0<-v0/a forward 1<-v1/b forward) out(0->v3/s1#0 forward 1->v4/s2#0 rebalance)\n" +
				"v3 p3 [s1] in(0<-v2/m2 forward) out()\n" +
				"v4 p1 [s2] in(0<-v2/m2 rebalance) out()\n",
			slots: 3,
		},
		{
			name: "file order does not matter beyond ties",
			ops:  []string{"out test-sink 2 m", "m test-map 2 src", "src test-source 2", "src2 test-source 1", "out2 test-sink 1 src2"},
			want: "v0 p2 [src m out] in() out()\n" +
				"v1 p1 [src2 out2] in() out()\n",
			slots: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse([]byte(job(tt.ops...)), "chain.yaml")
			if err != nil {
				t.Fatal(err)
			}
			vs := g.Vertices()
			if got := renderVertices(vs); got != tt.want {
				t.Errorf("vertices\n got:\n%s\nwant:\n%s", got, tt.want)
			}
			if got := g.MaxParallelismOfVertices(); got != tt.slots {
				t.Errorf("MaxParallelismOfVertices = %d, want %d", got, tt.slots)
			}
			// Every vertex output is some vertex's input, and the reverse.
			for _, v := range vs {
				for _, out := range v.Outputs {
					in := vs[out.ToVertex].Inputs[out.InputIndex]
					if in.FromVertex != v.Index || in.FromOperator != v.Operators[len(v.Operators)-1].ID ||
						vs[out.ToVertex].Operators[0].ID != out.ToOperator || in.Partition != out.Partition || in.Key != out.Key {
						t.Errorf("output %+v of v%d does not match input %+v", out, v.Index, in)
					}
				}
			}
		})
	}
}
