package jobgraph

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/operator"
)

const known = "known: test-keyed, test-map, test-panic, test-sink, test-source"

// TestParseRejects checks the exact message of every rejection. Each file
// is a small job; the expected error is prefixed by "job.yaml: ".
func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, file, err string
	}{
		{"syntax", "name: x\noperators: [\n", `invalid YAML: line 3: did not find expected node content`},
		{"tab indentation", "name: x\n\toperators: []\n", `invalid YAML: line 2: found a tab character that violates indentation`},
		{"parser error on line 1", "name: [x\n", `invalid YAML: line 2: did not find expected ',' or ']'`},
		{"parser error inside", "name: x\noperators: [\n  {id: a]\n", `invalid YAML: line 3: did not find expected ',' or '}'`},
		{"empty", "", `the job file is empty`},
		{"comments only", "# nothing\n", `the job file is empty`},
		{"two documents", "name: x\n---\nname: y\n", `a job file holds one YAML document; another starts at line 2`},
		{"not a mapping", "- a\n- b\n", `a job file is a mapping of fields (name, parallelism, max-parallelism, config, operators), got a list at line 1`},
		{"unknown top-level field", "name: x\nnmae: y\n", `unknown field "nmae" at line 2 (known: name, parallelism, max-parallelism, config, operators)`},
		{"duplicate top-level field", "name: x\nname: y\n", `field "name" is set twice, at lines 1 and 2`},
		{"merge key", "name: x\n<<: {parallelism: 2}\n", `merge keys (<<) are not supported, at line 2`},
		{"missing name", "operators: []\n", `name is required`},
		{"empty name", "name: ''\n", `name is required`},
		{"name is a list", "name: [a]\n", `name: want a string, got a list at line 1`},
		{"parallelism not int", "name: x\nparallelism: two\n", `parallelism: want an integer, got "two" at line 2`},
		{"parallelism float", "name: x\nparallelism: 2.5\n", `parallelism: want an integer, got 2.5 at line 2`},
		{"parallelism zero", "name: x\nparallelism: 0\n", `parallelism must be between 1 and 32768, is 0`},
		{"parallelism above max", "name: x\nparallelism: 200\n", `parallelism 200 is above max-parallelism 128`},
		{"max-parallelism zero", "name: x\nmax-parallelism: 0\n", `max-parallelism must be between 1 and 32768, is 0`},
		{"max-parallelism too big", "name: x\nmax-parallelism: 32769\n", `max-parallelism must be between 1 and 32768, is 32769`},
		{"max-parallelism huge", "name: x\nmax-parallelism: 99999999999\n", `max-parallelism: want an integer, got 99999999999 at line 2`},
		{"config invalid value", "name: x\nconfig:\n  execution.buffer-timeout: soon\n", `config: invalid value "soon" for key "execution.buffer-timeout": want a duration like 500ms, 10 s or 2 min`},
		{"config relative checkpoint dir", "name: x\nconfig:\n  state.checkpoints.dir: ckpts\n",
			`config: invalid value "ckpts" for key "state.checkpoints.dir": want an absolute path or a URI such as file:///var/weir/checkpoints, not a relative path, which the JobManager and each TaskManager would resolve against its own working directory`},
		{"config relative savepoint dir", "name: x\nconfig:\n  execution: {checkpointing: {savepoint-dir: ./sp}}\n",
			`config: invalid value "./sp" for key "execution.checkpointing.savepoint-dir": want an absolute path or a URI such as file:///var/weir/checkpoints, not a relative path, which the JobManager and each TaskManager would resolve against its own working directory`},
		{"config list", "name: x\nconfig:\n  execution: [1]\n", `config: line 3: key "execution": lists are not supported as configuration values`},
		{"config not a mapping", "name: x\nconfig: 3\n", `config: line 2: configuration must be a mapping of keys to values`},
		{"missing operators", "name: x\n", `operators is required`},
		{"operators mapping", "name: x\noperators: {a: 1}\n", `operators: want a list of operators, got a mapping at line 2`},
		{"no operators", "name: x\noperators: []\n", `operators: the job has no operators, at line 2`},
		{"operator not a mapping", "name: x\noperators: [src]\n", `operator #1 (line 2): want a mapping with fields id, type, parallelism, input, properties, got "src"`},
		{"unknown operator field", "name: x\noperators:\n- id: src\n  type: test-source\n  inputs: a\n",
			`operator "src": unknown field "inputs" at line 5 (known: id, type, parallelism, input, properties)`},
		{"unknown operator field before id", "name: x\noperators:\n- typo: 1\n  id: Bad\n",
			`operator #1 (line 3): unknown field "typo" at line 3 (known: id, type, parallelism, input, properties)`},
		{"missing id", "name: x\noperators:\n- type: test-source\n", `operator #1 (line 3): id is required`},
		{"malformed id", "name: x\noperators:\n- id: Numbers\n  type: test-source\n",
			`operator #1 (line 3): id "Numbers" is malformed: want 1 to 64 characters of a-z, 0-9, '_' and '-'`},
		{"id too long", "name: x\noperators:\n- id: " + strings.Repeat("a", 65) + "\n  type: test-source\n",
			`operator #1 (line 3): id "` + strings.Repeat("a", 65) + `" is malformed: want 1 to 64 characters of a-z, 0-9, '_' and '-'`},
		{"id is a mapping", "name: x\noperators:\n- id: {a: 1}\n", `operator #1 (line 3): id: want a string, got a mapping at line 3`},
		{"duplicate id", "name: x\noperators:\n- id: src\n  type: test-source\n- id: src\n  type: test-source\n",
			`operator "src": id is used twice, at lines 3 and 5`},
		{"missing type", "name: x\noperators:\n- id: src\n", `operator "src": type is required`},
		{"unknown type", "name: x\noperators:\n- id: src\n  type: sequense\n", `operator "src": unknown type "sequense" (` + known + `)`},
		{"operator parallelism zero", "name: x\noperators:\n- id: src\n  type: test-source\n  parallelism: 0\n",
			`operator "src": parallelism must be between 1 and 32768, is 0`},
		{"operator parallelism above max", "name: x\nmax-parallelism: 8\noperators:\n- id: src\n  type: test-source\n  parallelism: 9\n",
			`operator "src": parallelism 9 is above max-parallelism 8`},
		{"operator parallelism string", "name: x\noperators:\n- id: src\n  type: test-source\n  parallelism: '2'\n",
			`operator "src": parallelism: want an integer, got "2" at line 5`},
		{"unknown property", "name: x\noperators:\n- id: src\n  type: test-source\n  properties: {cuont: 3}\n",
			`operator "src" (test-source): unknown property "cuont" (known: count, interval)`},
		{"unknown properties", "name: x\noperators:\n- id: src\n  type: test-source\n  properties: {b: 3, a: 1}\n",
			`operator "src" (test-source): unknown properties "a", "b" (known: count, interval)`},
		{"property of a type without any", "name: x\noperators:\n- id: src\n  type: test-source\n- id: k\n  type: test-keyed\n  input: {from: src, partition: hash, key: k}\n  properties: {a: 1}\n",
			`operator "k" (test-keyed): unknown property "a" (known: none)`},
		{"required property", "name: x\noperators:\n- id: src\n  type: test-source\n- id: m\n  type: test-map\n  input: src\n",
			`operator "m" (test-map): property "expr" is required`},
		{"required property null", "name: x\noperators:\n- id: src\n  type: test-source\n- id: m\n  type: test-map\n  input: src\n  properties: {expr: null}\n",
			`operator "m" (test-map): property "expr" is required`},
		{"property validate", "name: x\noperators:\n- id: src\n  type: test-source\n- id: evens\n  type: test-map\n  input: src\n  properties: {expr: bad}\n",
			`operator "evens" (test-map): property "expr": does not compile`},
		{"property accessor error", "name: x\noperators:\n- id: src\n  type: test-source\n  properties: {count: 1.5}\n",
			`operator "src" (test-source): property "count": want an integer, got 1.5`},
		{"property duration", "name: x\noperators:\n- id: src\n  type: test-source\n  properties: {interval: soon}\n",
			`operator "src" (test-source): property "interval": want a duration like 500ms, 10 s or 2 min, got "soon"`},
		{"property not finite", "name: x\noperators:\n- id: src\n  type: test-source\n  properties: {count: .inf}\n",
			`operator "src" (test-source): property "count": .inf is not a finite number, at line 5`},
		{"properties not a mapping", "name: x\noperators:\n- id: src\n  type: test-source\n  properties: [1]\n",
			`operator "src" (test-source): properties: want a mapping, got a list at line 5`},
		{"nested duplicate key", "name: x\noperators:\n- id: src\n  type: test-source\n- id: m\n  type: test-map\n  input: src\n  properties:\n    expr: x\n    options: {a: 1, a: 2}\n",
			`operator "m" (test-map): property "options": field "a" is set twice, at lines 10 and 10`},
		{"validate panics", "name: x\noperators:\n- id: src\n  type: test-source\n- id: out\n  type: test-panic\n  input: src\n",
			`operator "out" (test-panic): validating properties failed: assignment to entry in nil map`},
		{"missing input", "name: x\noperators:\n- id: numbers\n  type: test-source\n- id: evens\n  type: test-map\n  input: numbrs\n  properties: {expr: ok}\n",
			`operator "evens": input "numbrs" does not exist`},
		{"source with input", "name: x\noperators:\n- id: a\n  type: test-source\n- id: b\n  type: test-source\n  input: a\n",
			`operator "b" (test-source): a source takes no input`},
		{"transform without input", "name: x\noperators:\n- id: a\n  type: test-source\n- id: m\n  type: test-map\n  properties: {expr: ok}\n",
			`operator "m" (test-map): input is required`},
		{"sink without input", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: []\n",
			`operator "out" (test-sink): input is required`},
		{"sink as input", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: a\n- id: out2\n  type: test-sink\n  input: out\n",
			`operator "out2": input "out" is a sink (test-sink), which has no output`},
		{"input listed twice", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: [a, {from: a, partition: rebalance}]\n",
			`operator "out": input "a" is listed twice`},
		{"input is a number list", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: [[a]]\n",
			`operator "out": input: want an operator id or a mapping with fields from, partition, key, got a list at line 7`},
		{"unknown input field", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: {from: a, partiton: hash}\n",
			`operator "out": input #1 (line 7): unknown field "partiton" at line 7 (known: from, partition, key)`},
		{"input without from", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: {partition: rebalance}\n",
			`operator "out": input #1 (line 7): from is required`},
		{"unknown partition", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: {from: a, partition: shuffle}\n",
			`operator "out": input "a": unknown partition "shuffle" (known: forward, rebalance, hash, broadcast)`},
		{"hash without key", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: {from: a, partition: hash}\n",
			`operator "out": input "a": partition hash needs a key`},
		{"key without hash", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: {from: a, partition: rebalance, key: k}\n",
			`operator "out": input "a": key "k" is only allowed with partition hash`},
		{"key without partition", "name: x\noperators:\n- id: a\n  type: test-source\n- id: out\n  type: test-sink\n  input: {from: a, key: k}\n",
			`operator "out": input "a": key "k" is only allowed with partition hash`},
		{"forward between different parallelism", "name: x\noperators:\n- id: a\n  type: test-source\n  parallelism: 2\n- id: out\n  type: test-sink\n  input: {from: a, partition: forward}\n",
			`operator "out": input "a": forward partitioning needs equal parallelism, "a" has 2 and "out" has 1`},
		{"keyed input forward", "name: x\noperators:\n- id: evens\n  type: test-source\n- id: counted\n  type: test-keyed\n  input: evens\n",
			`operator "counted" (test-keyed): input "evens" must be partitioned by hash, is forward`},
		{"keyed input rebalance", "name: x\noperators:\n- id: evens\n  type: test-source\n  parallelism: 2\n- id: counted\n  type: test-keyed\n  input: evens\n",
			`operator "counted" (test-keyed): input "evens" must be partitioned by hash, is rebalance`},
		{"keyed second input broadcast", "name: x\noperators:\n- id: a\n  type: test-source\n- id: b\n  type: test-source\n- id: k\n  type: test-keyed\n  input: [{from: a, partition: hash, key: k}, {from: b, partition: broadcast}]\n",
			`operator "k" (test-keyed): input "b" must be partitioned by hash, is broadcast`},
		{"self loop", "name: x\noperators:\n- id: a\n  type: test-source\n- id: m\n  type: test-map\n  input: [a, m]\n  properties: {expr: ok}\n- id: out\n  type: test-sink\n  input: m\n",
			`operators form a cycle: m -> m`},
		{"cycle", "name: x\noperators:\n" +
			"- id: out\n  type: test-sink\n  input: c\n" +
			"- id: src\n  type: test-source\n" +
			"- id: c\n  type: test-map\n  input: b\n  properties: {expr: ok}\n" +
			"- id: a\n  type: test-map\n  input: [src, c]\n  properties: {expr: ok}\n" +
			"- id: b\n  type: test-map\n  input: a\n  properties: {expr: ok}\n",
			`operators form a cycle: c -> a -> b -> c`},
		{"parallelism above the maximum", "name: x\nmax-parallelism: 32768\nparallelism: 32769\n",
			`parallelism must be between 1 and 32768, is 32769`},
		{"operator parallelism above the maximum", "name: x\nmax-parallelism: 32768\noperators:\n- id: src\n  type: test-source\n  parallelism: 40000\n",
			`operator "src": parallelism must be between 1 and 32768, is 40000`},
		{"name too long", "name: " + strings.Repeat("n", 257) + "\n", `name is 257 bytes long, more than the maximum of 256`},
		{"name with an escape sequence", "name: \"evil\\e[2J\"\n",
			`name "evil\x1b[2J": character U+001B at byte 4 is not allowed: a job name must not contain control, line-breaking or text-direction characters`},
		{"name with a newline", "name: \"two\\nlines\"\n",
			`name "two\nlines": character U+000A at byte 3 is not allowed: a job name must not contain control, line-breaking or text-direction characters`},
		{"name with a C1 control", "name: \"a\\x9bb\"\n",
			`name "a\u009bb": character U+009B at byte 1 is not allowed: a job name must not contain control, line-breaking or text-direction characters`},
		{"name with a text-direction override", "name: \"abc\\u202Efdp.exe\"\n",
			`name "abc\u202efdp.exe": character U+202E at byte 3 is not allowed: a job name must not contain control, line-breaking or text-direction characters`},
		{"name with a line separator", "name: \"a\\Lb\"\n",
			`name "a\u2028b": character U+2028 at byte 1 is not allowed: a job name must not contain control, line-breaking or text-direction characters`},
		{"long malformed id is clipped", "name: x\noperators:\n- id: " + strings.Repeat("A", 300) + "\n  type: test-source\n",
			`operator #1 (line 3): id "` + strings.Repeat("A", 128) + `..." (300 bytes) is malformed: want 1 to 64 characters of a-z, 0-9, '_' and '-'`},
		{"id with an escape sequence", "name: x\noperators:\n- id: \"a\\eb\"\n  type: test-source\n",
			`operator #1 (line 3): id "a\x1bb" is malformed: want 1 to 64 characters of a-z, 0-9, '_' and '-'`},
		{"long unknown type is clipped", "name: x\noperators:\n- id: a\n  type: " + strings.Repeat("t", 1000) + "\n",
			`operator "a": unknown type "` + strings.Repeat("t", 128) + `..." (1000 bytes) (` + known + `)`},
		{"too many operators", "name: x\noperators:\n" + strings.Repeat("- {id: a, type: test-source}\n", 1001),
			`operators: the job has 1001 operators, more than the maximum of 1000, at line 2`},
		{"too many edges", "name: x\noperators:\n- {id: a, type: test-source}\n- {id: b, type: test-sink, input: [" + strings.Repeat("a, ", 10000) + "a]}\n",
			`operators: the job has 10001 inputs (edges between operators), more than the maximum of 10000, at line 2`},
		{"too many subtasks", "name: x\nmax-parallelism: 32768\nparallelism: 25001\noperators:\n" +
			"- {id: a, type: test-source}\n- {id: b, type: test-source}\n- {id: c, type: test-source}\n- {id: d, type: test-source}\n",
			`the job has 100004 subtasks (the parallelism of its chains of operators, added up), more than the maximum of 100000`},
		{"too many channels", "name: x\nmax-parallelism: 2048\noperators:\n" +
			"- {id: a, type: test-source, parallelism: 1025}\n- {id: b, type: test-sink, parallelism: 1024, input: {from: a, partition: rebalance}}\n",
			`the job has 1049600 input channels (one per subtask on forward edges, one per pair of subtasks on rebalance, hash and broadcast edges), more than the maximum of 1048576: lower the parallelism of the operators on either side of its all-to-all edges`},
		{"first error in file order", "name: x\noperators:\n- id: a\n  type: test-source\n  parallelism: 0\n- id: b\n  type: nope\n",
			`operator "a": parallelism must be between 1 and 32768, is 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse([]byte(tt.file), "job.yaml")
			if err == nil {
				t.Fatalf("Parse accepted the job: %+v", g)
			}
			if g != nil {
				t.Errorf("Parse returned a graph with the error")
			}
			if want := "job.yaml: " + tt.err; err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// An all-to-all edge between two vertices of parallelism 1024 is exactly MaxChannels: accepted.
func TestParseMaxChannels(t *testing.T) {
	job := "name: x\nmax-parallelism: 2048\noperators:\n" +
		"- {id: a, type: test-source, parallelism: 1024}\n- {id: b, type: test-sink, parallelism: 1024, input: {from: a, partition: rebalance}}\n"
	g, err := Parse([]byte(job), "job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := countChannels(g.Vertices()); n != MaxChannels {
		t.Fatalf("%d channels, want %d", n, MaxChannels)
	}
}

func TestParseErrorWithoutFileName(t *testing.T) {
	_, err := Parse([]byte("name: x\n"), "")
	if err == nil || err.Error() != "operators is required" {
		t.Fatalf("got %v", err)
	}
}

const keyedCounts = `
name: keyed-counts
parallelism: 2
max-parallelism: 64
config:
  execution.buffer-timeout: 50ms
  weir:
    no-such-key: 1
operators:
  - id: out
    type: test-sink
    parallelism: 1
    input: counted
    properties: {path: /tmp/weir-out}
  - id: counted
    type: test-keyed
    input: {from: evens, partition: hash, key: key}
  - id: evens
    type: test-map
    input: numbers
    properties: {expr: "record.seq % 2 == 0", options: {deep: [1, 2.5, true, null, x]}}
  - id: numbers
    type: test-source
    properties: {count: 1000, interval: 10ms}
`

func TestParseResolvesDefaultsAndOrder(t *testing.T) {
	g, warnings, err := ParseWithWarnings([]byte(keyedCounts), "keyed-counts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`keyed-counts.yaml: config: unknown configuration key "weir.no-such-key"`}; !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}
	want := &JobGraph{
		Name:           "keyed-counts",
		Parallelism:    2,
		MaxParallelism: 64,
		Config:         map[string]string{"execution.buffer-timeout": "50ms", "weir.no-such-key": "1"},
		Operators: []*Operator{
			{ID: "numbers", Type: "test-source", Parallelism: 2, Properties: operator.Properties{"count": 1000, "interval": "10ms"}},
			{ID: "evens", Type: "test-map", Parallelism: 2,
				Properties: operator.Properties{"expr": "record.seq % 2 == 0", "options": map[string]any{"deep": []any{1, 2.5, true, nil, "x"}}},
				Inputs:     []Input{{From: "numbers", Partition: Forward}}},
			{ID: "counted", Type: "test-keyed", Parallelism: 2, Properties: operator.Properties{},
				Inputs: []Input{{From: "evens", Partition: Hash, Key: "key"}}},
			{ID: "out", Type: "test-sink", Parallelism: 1, Properties: operator.Properties{"path": "/tmp/weir-out"},
				Inputs: []Input{{From: "counted", Partition: Rebalance}}},
		},
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("graph\n got: %s\nwant: %s", dump(g), dump(want))
	}
	if op := g.Operator("counted"); op != g.Operators[2] {
		t.Errorf("Operator(counted) = %+v", op)
	}
	if op := g.Operator("nope"); op != nil {
		t.Errorf("Operator(nope) = %+v", op)
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

func TestParseDefaults(t *testing.T) {
	const file = "name: d\noperators:\n- id: a\n  type: test-source\n"
	g, err := Parse([]byte(file), "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if g.Parallelism != 1 || g.MaxParallelism != 128 || g.Operators[0].Parallelism != 1 || len(g.Config) != 0 || g.Config == nil {
		t.Errorf("defaults: %+v %+v", g, g.Operators[0])
	}

	// The cluster's default applies when the job sets none, and not otherwise.
	g, _, err = ParseWithOptions([]byte(file), "d.yaml", ParseOptions{DefaultParallelism: 4})
	if err != nil {
		t.Fatal(err)
	}
	if g.Parallelism != 4 || g.Operators[0].Parallelism != 4 {
		t.Errorf("cluster default: %+v %+v", g, g.Operators[0])
	}
	g, _, err = ParseWithOptions([]byte("parallelism: 3\n"+file), "d.yaml", ParseOptions{DefaultParallelism: 4})
	if err != nil {
		t.Fatal(err)
	}
	if g.Parallelism != 3 || g.Operators[0].Parallelism != 3 {
		t.Errorf("job parallelism: %+v %+v", g, g.Operators[0])
	}
	_, _, err = ParseWithOptions([]byte("max-parallelism: 2\n"+file), "d.yaml", ParseOptions{DefaultParallelism: 4})
	if want := "d.yaml: the cluster's default parallelism 4 is above max-parallelism 2: set parallelism or max-parallelism"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestParseJSON checks that the JSON form of a job (tab-indented, as
// encoders write it) gives the same graph as YAML, apart from numbers,
// which YAML keeps as ints and JSON as float64 would not: both decode
// through YAML, so they are equal.
func TestParseJSON(t *testing.T) {
	const js = `{
	"name": "keyed-counts",
	"parallelism": 2,
	"max-parallelism": 64,
	"config": {"execution.buffer-timeout": "50ms", "weir": {"no-such-key": 1}},
	"operators": [
		{"id": "out", "type": "test-sink", "parallelism": 1, "input": "counted", "properties": {"path": "/tmp/weir-out"}},
		{"id": "counted", "type": "test-keyed", "input": {"from": "evens", "partition": "hash", "key": "key"}},
		{"id": "evens", "type": "test-map", "input": "numbers",
		 "properties": {"expr": "record.seq % 2 == 0", "options": {"deep": [1, 2.5, true, null, "x"]}}},
		{"id": "numbers", "type": "test-source", "properties": {"count": 1000, "interval": "10ms"}}
	]
}`
	fromJSON, err := Parse([]byte(js), "keyed-counts.json")
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := Parse([]byte(keyedCounts), "keyed-counts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Errorf("JSON\n%s\nYAML\n%s", dump(fromJSON), dump(fromYAML))
	}
	_, err = Parse([]byte("{\n\t\"name\": \"x\",\n\t\"operators\": [}\n"), "bad.json")
	if want := `bad.json: invalid YAML: line 3: did not find expected node content`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestOperatorJSONRoundTrip checks that an operator survives the trip to
// the TaskManagers, where properties read the same through the accessors.
func TestOperatorJSONRoundTrip(t *testing.T) {
	g, err := Parse([]byte(keyedCounts), "keyed-counts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(g.Operator("numbers"))
	if err != nil {
		t.Fatal(err)
	}
	var op Operator
	if err := DecodeOperator(b, &op); err != nil {
		t.Fatal(err)
	}
	n, err := op.Properties.Int("count", 0)
	if err != nil || n != 1000 {
		t.Errorf("count after JSON = %d, %v", n, err)
	}
}

func TestParseIsDeterministic(t *testing.T) {
	first, err := Parse([]byte(keyedCounts), "k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		g, err := Parse([]byte(keyedCounts), "k.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, first) || !reflect.DeepEqual(g.Vertices(), first.Vertices()) {
			t.Fatalf("run %d differs", i)
		}
	}
}

func TestParseAnchorsAndAliases(t *testing.T) {
	const file = `
name: a
operators:
- id: src
  type: test-source
  properties: &p {count: 5}
- id: src2
  type: test-source
  properties: *p
`
	g, err := Parse([]byte(file), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Operators[1].Properties, operator.Properties{"count": 5}) {
		t.Errorf("alias properties = %v", g.Operators[1].Properties)
	}
}

func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: bomb\nx0: &a0 [1,1,1,1,1,1,1,1,1,1]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("x")
		b.WriteString(string(rune('0' + i)))
		b.WriteString(": &a")
		b.WriteString(string(rune('0' + i)))
		b.WriteString(" [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString("*a")
			b.WriteString(string(rune('0' + i - 1)))
		}
		b.WriteString("]\n")
	}
	// Anchors must be defined before use; define them inside properties.
	file := "name: bomb\noperators:\n- id: src\n  type: test-source\n  properties:\n    count: 1\n    interval: " +
		"{" + strings.ReplaceAll(strings.TrimPrefix(b.String(), "name: bomb\n"), "\n", ", ") + "}\n"
	_, err := Parse([]byte(file), "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), `property "interval": more than 100000 values`) {
		t.Fatalf("got %v", err)
	}
}

// TestParseAtTheLimits: a job exactly at every limit is accepted.
func TestParseAtTheLimits(t *testing.T) {
	tests := []struct{ name, file string }{
		{"name of 256 bytes", "name: " + strings.Repeat("n", 256) + "\noperators: [{id: a, type: test-source}]\n"},
		{"name in any script", "name: \"zählung 数え 🙂 tab-free\"\noperators: [{id: a, type: test-source}]\n"},
		{"parallelism 32768", "name: x\nmax-parallelism: 32768\nparallelism: 32768\noperators: [{id: a, type: test-source}]\n"},
		{"1000 operators", "name: x\noperators:\n- {id: a, type: test-source}\n" + func() string {
			var b strings.Builder
			for i := 1; i < 1000; i++ {
				b.WriteString("- {id: s" + strconv.Itoa(i) + ", type: test-sink, input: a}\n")
			}
			return b.String()
		}()},
		{"10000 edges", "name: x\noperators:\n" + func() string {
			var b strings.Builder
			var ids []string
			for i := 0; i < 100; i++ {
				id := "a" + strconv.Itoa(i)
				ids = append(ids, id)
				b.WriteString("- {id: " + id + ", type: test-source}\n")
			}
			for i := 0; i < 100; i++ {
				b.WriteString("- {id: s" + strconv.Itoa(i) + ", type: test-sink, input: [" + strings.Join(ids, ", ") + "]}\n")
			}
			return b.String()
		}()},
		{"100000 subtasks", "name: x\nmax-parallelism: 32768\nparallelism: 25000\noperators:\n" +
			"- {id: a, type: test-source}\n- {id: b, type: test-source}\n- {id: c, type: test-source}\n- {id: d, type: test-source}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.file), "job.yaml"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCheckNameInvalidUTF8: YAML does not let invalid UTF-8 through, but a
// name that is not UTF-8 must not reach a terminal either.
func TestCheckNameInvalidUTF8(t *testing.T) {
	err := checkName("ab\xffc")
	if want := `name "ab\xffc" is not valid UTF-8 (at byte 2)`; errString(err) != want {
		t.Fatalf("err = %q, want %q", errString(err), want)
	}
	if err := checkName("replacement \uFFFD character is text"); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeOperatorKeepsIntegers: integers of the job file reach the
// operator type on the TaskManager exactly as they were validated at
// submission: parse, encode as the scheduler does (encoding/json), decode
// as the task does.
func TestDecodeOperatorKeepsIntegers(t *testing.T) {
	for _, count := range []string{
		"0", "1", "-1", "9007199254740992", "9007199254740993", "-9007199254740993",
		"9223372036854775807", "-9223372036854775808", "1e15", "1.0e18", "12.0",
	} {
		t.Run(count, func(t *testing.T) {
			g, err := Parse([]byte("name: x\noperators: [{id: a, type: test-source, properties: {count: "+count+"}}]\n"), "")
			if err != nil {
				t.Fatal(err)
			}
			atSubmission, err := g.Operators[0].Properties.Int("count", 0)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(g.Operators[0])
			if err != nil {
				t.Fatal(err)
			}
			var op Operator
			if err := DecodeOperator(b, &op); err != nil {
				t.Fatal(err)
			}
			atDeployment, err := op.Properties.Int("count", 0)
			if err != nil || atDeployment != atSubmission {
				t.Fatalf("count %s: %d at submission, %d, %v at deployment (JSON %s)", count, atSubmission, atDeployment, err, b)
			}
		})
	}
	// What submission rejects, deployment rejects too.
	for _, count := range []string{"9223372036854775808", "18446744073709551615", "1.5", "1e19"} {
		t.Run(count, func(t *testing.T) {
			_, err := Parse([]byte("name: x\noperators: [{id: a, type: test-source, properties: {count: "+count+"}}]\n"), "")
			if err == nil {
				t.Fatalf("count %s accepted", count)
			}
			var op Operator
			if err := DecodeOperator([]byte(`{"id":"a","type":"test-source","properties":{"count":`+count+`}}`), &op); err != nil {
				t.Fatal(err)
			}
			if n, err := op.Properties.Int("count", 0); err == nil {
				t.Fatalf("count %s decodes to %d", count, n)
			}
		})
	}
}

func TestDecodeOperatorMalformed(t *testing.T) {
	for _, tt := range []struct{ in, err string }{
		{`{`, "unexpected end of JSON input"},
		{`{"id":"a"} {"id":"b"}`, "invalid character '{' after top-level value"},
		{`{"id":5}`, "json: cannot unmarshal number into Go struct field Operator.id of type string"},
	} {
		var op Operator
		if err := DecodeOperator([]byte(tt.in), &op); errString(err) != tt.err {
			t.Errorf("DecodeOperator(%s) = %q, want %q", tt.in, errString(err), tt.err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
