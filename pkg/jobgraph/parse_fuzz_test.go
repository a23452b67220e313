package jobgraph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/weirstream/weir/pkg/internal/fuzzcheck"
)

// FuzzParse checks Parse on hostile job files, YAML and JSON: no panic, allocation bounded by the file (alias bombs
// included), the same result on every run, errors prefixed by the file name; and for a file that parses, every
// invariant the package doc promises (a valid, acyclic, topologically ordered graph within the limits), operators
// that survive the JSON trip to the TaskManagers, and a graph that, written back as a JSON job file, parses to the
// same graph.
func FuzzParse(f *testing.F) {
	f.Add([]byte(keyedCounts))
	f.Add([]byte("name: d\noperators:\n- id: a\n  type: test-source\n"))
	f.Add([]byte(`{"name": "j", "parallelism": 2, "operators": [{"id": "a", "type": "test-source", "properties": {"count": 18446744073709551615}},` +
		` {"id": "b", "type": "test-sink", "input": [{"from": "a", "partition": "broadcast"}], "properties": {"path": "\u00e9\t\u2028"}}]}`))
	f.Add([]byte("name: a\noperators:\n- id: src\n  type: test-source\n  properties: &p {count: 5}\n- id: src2\n  type: test-source\n  properties: *p\n"))
	f.Add([]byte("name: c\noperators:\n- {id: a, type: test-map, input: b, properties: {expr: x}}\n- {id: b, type: test-map, input: a, properties: {expr: y}}\n"))
	f.Add([]byte("name: p\noperators:\n- {id: a, type: test-panic}\n"))
	f.Add([]byte("name: x\nconfig: {a: &a {b: 1, c: 2}, d: {e: *a, f: *a}}\noperators: [{id: a, type: test-source}]\n"))
	f.Add([]byte("name: x\n---\nname: y\n"))
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			g    *JobGraph
			warn []string
			err  error
		)
		fuzzcheck.BoundedAlloc(t, "Parse", len(data), 32<<20, 4096, func() { g, warn, err = ParseWithWarnings(data, "job.yaml") })
		g2, warn2, err2 := ParseWithWarnings(data, "job.yaml")
		if fmt.Sprint(err) != fmt.Sprint(err2) || fmt.Sprint(warn) != fmt.Sprint(warn2) || dumpJSON(t, g) != dumpJSON(t, g2) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "job.yaml: ") {
				t.Fatalf("error %q is not prefixed by the file name", err)
			}
			return
		}
		checkGraph(t, g)
		for _, op := range g.Operators {
			b, err := json.Marshal(op)
			if err != nil {
				t.Fatalf("operator %q does not encode: %v", op.ID, err)
			}
			var back Operator
			if err := DecodeOperator(b, &back); err != nil {
				t.Fatalf("operator %q does not decode: %v", op.ID, err)
			}
			if again, _ := json.Marshal(&back); !bytes.Equal(again, b) {
				t.Fatalf("operator changed on its way to the TaskManagers:\n%s\n%s", b, again)
			}
		}
		file := asJobFile(t, g)
		back, err := Parse(file, "back.json")
		if err != nil {
			t.Fatalf("the graph written back does not parse: %v\n%s", err, file)
		}
		if a, b := dumpJSON(t, g), dumpJSON(t, back); a != b {
			t.Fatalf("the graph written back parses differently:\n%s\n%s", a, b)
		}
	})
}

// checkGraph checks what the package doc promises of a parsed graph.
func checkGraph(t *testing.T, g *JobGraph) {
	t.Helper()
	if g.Name == "" || len(g.Name) > MaxNameLength || !utf8.ValidString(g.Name) {
		t.Fatalf("name %q", g.Name)
	}
	if g.MaxParallelism < 1 || g.MaxParallelism > MaxMaxParallelism || g.Parallelism < 1 || g.Parallelism > g.MaxParallelism {
		t.Fatalf("parallelism %d, max %d", g.Parallelism, g.MaxParallelism)
	}
	if len(g.Operators) == 0 || len(g.Operators) > MaxOperators || g.Config == nil {
		t.Fatalf("%d operators, config %v", len(g.Operators), g.Config)
	}
	placed := map[string]*Operator{}
	edges := 0
	for _, op := range g.Operators {
		if !validID(op.ID) || placed[op.ID] != nil {
			t.Fatalf("operator id %q malformed or repeated", op.ID)
		}
		if op.Parallelism < 1 || op.Parallelism > g.MaxParallelism {
			t.Fatalf("operator %q: parallelism %d", op.ID, op.Parallelism)
		}
		for _, in := range op.Inputs {
			edges++
			from := placed[in.From]
			if from == nil {
				t.Fatalf("operator %q: input %q is not before it", op.ID, in.From)
			}
			switch {
			case in.Partition != Forward && in.Partition != Rebalance && in.Partition != Hash && in.Partition != Broadcast:
				t.Fatalf("operator %q: partition %q", op.ID, in.Partition)
			case (in.Partition == Hash) != (in.Key != ""):
				t.Fatalf("operator %q: partition %q with key %q", op.ID, in.Partition, in.Key)
			case in.Partition == Forward && from.Parallelism != op.Parallelism:
				t.Fatalf("operator %q: forward from parallelism %d to %d", op.ID, from.Parallelism, op.Parallelism)
			}
		}
		placed[op.ID] = op
	}
	if edges > MaxEdges {
		t.Fatalf("%d edges", edges)
	}
}

func dumpJSON(t *testing.T, g *JobGraph) string {
	t.Helper()
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatalf("graph does not encode: %v", err)
	}
	return string(b)
}

// asJobFile writes g as a JSON job file, every input explicit, every non-ASCII character escaped (YAML, which reads
// the file, does not take every character raw that JSON does).
func asJobFile(t *testing.T, g *JobGraph) []byte {
	t.Helper()
	type input struct {
		From      string `json:"from"`
		Partition string `json:"partition"`
		Key       string `json:"key,omitempty"`
	}
	type op struct {
		ID          string         `json:"id"`
		Type        string         `json:"type"`
		Parallelism int            `json:"parallelism"`
		Input       []input        `json:"input,omitempty"`
		Properties  map[string]any `json:"properties,omitempty"`
	}
	file := struct {
		Name           string            `json:"name"`
		Parallelism    int               `json:"parallelism"`
		MaxParallelism int               `json:"max-parallelism"`
		Config         map[string]string `json:"config"`
		Operators      []op              `json:"operators"`
	}{Name: g.Name, Parallelism: g.Parallelism, MaxParallelism: g.MaxParallelism, Config: g.Config}
	for _, o := range g.Operators {
		w := op{ID: o.ID, Type: o.Type, Parallelism: o.Parallelism, Properties: o.Properties}
		for _, in := range o.Inputs {
			w.Input = append(w.Input, input(in))
		}
		file.Operators = append(file.Operators, w)
	}
	b, err := json.Marshal(file)
	if err != nil {
		t.Fatalf("graph does not encode as a job file: %v", err)
	}
	var out bytes.Buffer
	for _, r := range string(b) {
		if r < 0x7f {
			out.WriteRune(r)
		} else if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		} else {
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.Bytes()
}
