package builtin

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/operator"
)

func TestRegistered(t *testing.T) {
	want := map[string]struct {
		kind  operator.Kind
		keyed bool
	}{
		"sequence":       {operator.KindSource, false},
		"file-source":    {operator.KindSource, false},
		"map":            {operator.KindTransform, false},
		"filter":         {operator.KindTransform, false},
		"flat-map":       {operator.KindTransform, false},
		"aggregate":      {operator.KindTransform, true},
		"file-sink":      {operator.KindSink, false},
		"print-sink":     {operator.KindSink, false},
		"blackhole-sink": {operator.KindSink, false},
	}
	for name, w := range want {
		ty, ok := operator.Lookup(name)
		if !ok {
			t.Errorf("%s is not registered", name)
			continue
		}
		if ty.Kind != w.kind || ty.Keyed != w.keyed {
			t.Errorf("%s: kind %v keyed %v, want %v %v", name, ty.Kind, ty.Keyed, w.kind, w.keyed)
		}
		if ty.Validate == nil || (ty.Kind == operator.KindSource) != (ty.NewSource != nil) || (ty.Kind != operator.KindSource) != (ty.NewOperator != nil) {
			t.Errorf("%s: constructors do not match its kind", name)
		}
		for _, p := range ty.Properties {
			if p.Description == "" {
				t.Errorf("%s: property %q has no description", name, p.Name)
			}
		}
	}
}

// TestValidate lists every error Validate reports, and checks that the
// constructor reports the same one (they share the parse function).
func TestValidate(t *testing.T) {
	tests := []struct {
		typ   string
		props operator.Properties
		err   string
	}{
		{"sequence", operator.Properties{"keys": 1}, ""},
		{"sequence", operator.Properties{"keys": 4, "count": 0, "rate": 0.5}, ""},
		{"sequence", operator.Properties{}, `property "keys" is required`},
		{"sequence", operator.Properties{"keys": nil}, `property "keys" is required`},
		{"sequence", operator.Properties{"keys": 0}, `property "keys": want an integer between 1 and 1000000000000000000, got 0`},
		{"sequence", operator.Properties{"keys": int64(1e18), "count": int64(1e18), "rate": 1e9}, ""},
		{"sequence", operator.Properties{"keys": 1e15, "rate": 0.001}, ""},
		{"sequence", operator.Properties{"keys": int64(1e18) + 1}, `property "keys": want an integer between 1 and 1000000000000000000, got 1000000000000000001`},
		{"sequence", operator.Properties{"keys": int64(math.MaxInt64)}, `property "keys": want an integer between 1 and 1000000000000000000, got 9223372036854775807`},
		{"sequence", operator.Properties{"keys": uint64(math.MaxUint64)}, `property "keys": want an integer, got 18446744073709551615`},
		{"sequence", operator.Properties{"keys": "3"}, `property "keys": want an integer, got "3"`},
		{"sequence", operator.Properties{"keys": 1, "count": -1}, `property "count": want an integer between 0 and 1000000000000000000, got -1`},
		{"sequence", operator.Properties{"keys": 1, "count": int64(1e18) + 1}, `property "count": want an integer between 0 and 1000000000000000000, got 1000000000000000001`},
		{"sequence", operator.Properties{"keys": 1, "count": 1.5}, `property "count": want an integer, got 1.5`},
		{"sequence", operator.Properties{"keys": 1, "rate": -1}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got -1`},
		{"sequence", operator.Properties{"keys": 1, "rate": 0.0009}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got 0.0009`},
		{"sequence", operator.Properties{"keys": 1, "rate": 1e300}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got 1e+300`},
		{"sequence", operator.Properties{"keys": 1, "rate": "fast"}, `property "rate": want a number, got "fast"`},

		{"file-source", operator.Properties{"path": "/in", "format": "json", "monitor-interval": "10 s"}, ""},
		{"file-source", operator.Properties{}, `property "path" is required`},
		{"file-source", operator.Properties{"path": ""}, `property "path" is required`},
		{"file-source", operator.Properties{"path": 5}, `property "path": want a string, got 5`},
		{"file-source", operator.Properties{"path": "/in", "format": "csv"}, `property "format": want "text" or "json", got "csv"`},
		{"file-source", operator.Properties{"path": "/in", "monitor-interval": "soon"}, `property "monitor-interval": want a duration like 500ms, 10 s or 2 min, got "soon"`},
		{"file-source", operator.Properties{"path": "/in", "monitor-interval": "0s"}, `property "monitor-interval": want a duration between 100ms and 24h, got 0 (leave it out for a bounded source)`},
		{"file-source", operator.Properties{"path": "/in", "monitor-interval": "100ms", "max-line-bytes": "64 mb"}, ""},
		{"file-source", operator.Properties{"path": "/in", "monitor-interval": "24h", "max-line-bytes": 1}, ""},
		{"file-source", operator.Properties{"path": "/in", "monitor-interval": "99ms"}, `property "monitor-interval": want a duration between 100ms and 24h, got "99ms"`},
		{"file-source", operator.Properties{"path": "/in", "monitor-interval": int64(math.MaxInt64) / 1e6}, `property "monitor-interval": want a duration between 100ms and 24h, got 9223372036854`},
		{"file-source", operator.Properties{"path": "/in", "max-line-bytes": 0}, `property "max-line-bytes": want a memory size between 1 byte and 64 mb, got 0`},
		{"file-source", operator.Properties{"path": "/in", "max-line-bytes": "1 gb"}, `property "max-line-bytes": want a memory size between 1 byte and 64 mb, got "1 gb"`},
		{"file-source", operator.Properties{"path": "/in", "max-line-bytes": "lots"}, `property "max-line-bytes": want a memory size like 64kb or 1 mb, or a number of bytes, got "lots"`},
		{"file-source", operator.Properties{"path": "/" + strings.Repeat("p", 4095)}, ""},
		{"file-source", operator.Properties{"path": "/" + strings.Repeat("p", 4096)}, `property "path": a path of 4097 bytes, more than the maximum of 4096`},
		{"file-source", operator.Properties{"path": "/in\x00/x"}, `property "path": path "/in\x00/x" has a NUL byte at byte 3`},

		{"map", operator.Properties{"expr": `{"a": record.b}`}, ""},
		{"map", operator.Properties{}, `property "expr" is required`},
		{"map", operator.Properties{"expr": `record.seq > 1`}, `property "expr": expression "record.seq > 1" returns bool, want map(string, dyn)`},
		{"filter", operator.Properties{"expr": `record.seq > 1`}, ""},
		{"filter", operator.Properties{"expr": `{"a": 1}`}, `property "expr": expression "{\"a\": 1}" returns map(string, int), want bool`},
		{"flat-map", operator.Properties{"expr": `[record]`}, ""},
		{"flat-map", operator.Properties{"expr": `{"a": 1}`}, `property "expr": expression "{\"a\": 1}" returns map(string, int), want list(map(string, dyn))`},

		{"aggregate", operator.Properties{"aggregates": map[string]any{"n": "count", "t": "sum(seq)"}}, ""},
		{"aggregate", operator.Properties{}, `property "aggregates" is required`},
		{"aggregate", operator.Properties{"aggregates": "count"}, `property "aggregates": want a map, got "count"`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{}}, `property "aggregates": want at least one output field`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"top": "maxx(seq)"}},
			`property "aggregates": field "top": unknown aggregate "maxx(seq)": want count, sum(f), min(f), max(f) or avg(f)`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"s": "sum()"}},
			`property "aggregates": field "s": unknown aggregate "sum()": want count, sum(f), min(f), max(f) or avg(f)`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"s": "sum(a)(b)"}},
			`property "aggregates": field "s": unknown aggregate "sum(a)(b)": want count, sum(f), min(f), max(f) or avg(f)`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"c": "count(x)"}},
			`property "aggregates": field "c": unknown aggregate "count(x)": want count, sum(f), min(f), max(f) or avg(f)`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"c": "sum(x"}},
			`property "aggregates": field "c": unknown aggregate "sum(x": want count, sum(f), min(f), max(f) or avg(f)`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"n": 5}},
			`property "aggregates": field "n": want a string (count, sum(f), min(f), max(f) or avg(f)), got 5`},
		{"aggregate", operator.Properties{"aggregates": manyAggregates(256)}, ""},
		{"aggregate", operator.Properties{"aggregates": manyAggregates(257)}, `property "aggregates": 257 output fields, more than the maximum of 256`},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"": "count"}},
			`property "aggregates": output field names must not be empty`},

		{"file-sink", operator.Properties{"path": "/out", "format": "text", "rate": 100}, ""},
		{"file-sink", operator.Properties{}, `property "path" is required`},
		{"file-sink", operator.Properties{"path": "/out", "rate": 0.001}, ""},
		{"file-sink", operator.Properties{"path": strings.Repeat("o", 4097)}, `property "path": a path of 4097 bytes, more than the maximum of 4096`},
		{"file-sink", operator.Properties{"path": "/out\x00"}, `property "path": path "/out\x00" has a NUL byte at byte 4`},
		{"file-sink", operator.Properties{"path": "/out", "format": "csv"}, `property "format": want "json" or "text", got "csv"`},
		{"file-sink", operator.Properties{"path": "/out", "rate": -2.5}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got -2.5`},
		{"file-sink", operator.Properties{"path": "/out", "rate": 2e9}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got 2e+09`},

		{"print-sink", nil, ""},
		{"blackhole-sink", nil, ""},
	}
	for _, tt := range tests {
		ty, ok := operator.Lookup(tt.typ)
		if !ok {
			t.Fatalf("%s not registered", tt.typ)
		}
		if err := ty.Validate(tt.props); errString(err) != tt.err {
			t.Errorf("%s %v: Validate = %q\nwant %q", tt.typ, tt.props, errString(err), tt.err)
		}
		var err error
		if ty.NewSource != nil {
			_, err = ty.NewSource(tt.props)
		} else {
			_, err = ty.NewOperator(tt.props)
		}
		if errString(err) != tt.err {
			t.Errorf("%s %v: constructor = %q\nwant %q", tt.typ, tt.props, errString(err), tt.err)
		}
	}
}

func manyAggregates(n int) map[string]any {
	m := make(map[string]any, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("n%d", i)] = "count"
	}
	return m
}

// TestExprLimits: CEL's parser bounds an expression to 100,000 code
// points and 250 levels of nesting (docs/jobs.md, "Limits").
func TestExprLimits(t *testing.T) {
	for _, typ := range []string{"map", "filter", "flat-map"} {
		ty, _ := operator.Lookup(typ)
		long := "record.a == '" + strings.Repeat("x", 100_000) + "'"
		if err := ty.Validate(operator.Properties{"expr": long}); err == nil || !strings.Contains(err.Error(), "size exceeds limit: size: 100014, limit 100000") {
			t.Errorf("%s: %d characters: %.80v", typ, len(long), err)
		}
		deep := strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300)
		if err := ty.Validate(operator.Properties{"expr": deep}); err == nil || !strings.Contains(err.Error(), "recursion limit exceeded: 250") {
			t.Errorf("%s: 300 levels: %.80v", typ, err)
		}
	}
}

// TestPropertySpecs keeps the documented properties in step with the ones
// the parse functions read.
func TestPropertySpecs(t *testing.T) {
	want := map[string][]string{
		"sequence":       {"keys", "count", "rate"},
		"file-source":    {"path", "format", "monitor-interval", "max-line-bytes"},
		"map":            {"expr"},
		"filter":         {"expr"},
		"flat-map":       {"expr"},
		"aggregate":      {"aggregates"},
		"file-sink":      {"path", "format", "rate"},
		"print-sink":     nil,
		"blackhole-sink": nil,
	}
	required := map[string]bool{"sequence.keys": true, "file-source.path": true, "map.expr": true,
		"filter.expr": true, "flat-map.expr": true, "aggregate.aggregates": true, "file-sink.path": true}
	for typ, names := range want {
		ty, _ := operator.Lookup(typ)
		var got []string
		for _, p := range ty.Properties {
			got = append(got, p.Name)
			if p.Required != required[typ+"."+p.Name] {
				t.Errorf("%s.%s: Required = %v", typ, p.Name, p.Required)
			}
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s properties = %v, want %v", typ, got, names)
		}
	}
}

// TestCheckpointHooks pins which operators keep state and which take part
// in two-phase commit (docs/jobs.md says the same).
func TestCheckpointHooks(t *testing.T) {
	tests := []struct {
		typ                             string
		props                           operator.Properties
		snapshotter, listener, finalCkp bool
	}{
		{"sequence", operator.Properties{"keys": 1}, true, false, false},
		{"file-source", operator.Properties{"path": "x"}, true, false, false},
		{"map", operator.Properties{"expr": `{"a": 1}`}, false, false, false},
		{"filter", operator.Properties{"expr": "true"}, false, false, false},
		{"flat-map", operator.Properties{"expr": `[{"a": 1}]`}, false, false, false},
		{"aggregate", operator.Properties{"aggregates": map[string]any{"n": "count"}}, true, false, false},
		{"file-sink", operator.Properties{"path": "x"}, true, true, true},
		{"print-sink", nil, false, false, false},
		{"blackhole-sink", nil, false, false, false},
	}
	for _, tt := range tests {
		var op any
		if ty, _ := operator.Lookup(tt.typ); ty.Kind == operator.KindSource {
			op = newSource(t, tt.typ, tt.props)
		} else {
			op = newOperator(t, tt.typ, tt.props)
		}
		_, s := op.(operator.Snapshotter)
		_, l := op.(operator.CheckpointListener)
		_, f := op.(operator.FinalCheckpointer)
		if s != tt.snapshotter || l != tt.listener || f != tt.finalCkp {
			t.Errorf("%s: Snapshotter %v, CheckpointListener %v, FinalCheckpointer %v; want %v, %v, %v",
				tt.typ, s, l, f, tt.snapshotter, tt.listener, tt.finalCkp)
		}
	}
}

// TestLimitsDocumented: docs/jobs.md's "Limits" gives the range of every
// property of every type, under a heading that names the type.
func TestLimitsDocumented(t *testing.T) {
	data, err := os.ReadFile("../../docs/jobs.md")
	if err != nil {
		t.Fatal(err)
	}
	_, limits, ok := strings.Cut(string(data), "\n## Limits\n")
	if !ok {
		t.Fatal(`docs/jobs.md has no "## Limits" section`)
	}
	sections := map[string]string{} // heading -> text
	for _, sec := range strings.Split(limits, "\n### ")[1:] {
		heading, body, _ := strings.Cut(sec, "\n")
		sections[heading] = body
	}
	for _, ty := range operator.Types() {
		found := false
		for heading, body := range sections {
			if !slices.Contains(strings.FieldsFunc(heading, func(r rune) bool { return r == ' ' || r == ',' }), ty.Name) {
				continue
			}
			found = true
			for _, p := range ty.Properties {
				if !strings.Contains(body, "| `"+p.Name+"` |") {
					t.Errorf("docs/jobs.md, Limits, %q: no range for %s's property %q", heading, ty.Name, p.Name)
				}
			}
		}
		if !found && !strings.HasPrefix(ty.Name, "test-") {
			t.Errorf("docs/jobs.md, Limits: no section for %s", ty.Name)
		}
	}
}
