package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c := New()
	if got := c.String(JobManagerRPCAddress); got != "127.0.0.1" {
		t.Errorf("jobmanager.rpc.address = %q", got)
	}
	if got := c.Int(JobManagerRPCPort); got != 6123 {
		t.Errorf("jobmanager.rpc.port = %d", got)
	}
	if got := c.Duration(HeartbeatInterval); got != 2*time.Second {
		t.Errorf("heartbeat.interval = %v", got)
	}
	if got := c.MemorySize(SegmentSize); got != 32768 {
		t.Errorf("segment-size = %d", got)
	}
	if lo, hi := c.PortRange(MetricsPromPort); lo != 9249 || hi != 9260 {
		t.Errorf("metrics.reporter.prom.port = %d-%d", lo, hi)
	}
	if lo, hi := c.PortRange(TaskManagerRPCPort); lo != 0 || hi != 0 {
		t.Errorf("taskmanager.rpc.port = %d-%d", lo, hi)
	}
	if !c.Bool(ClusterEvenlySpreadOutSlots) {
		t.Error("cluster.evenly-spread-out-slots = false")
	}
	if got := c.Float(ExponentialDelayBackoffMultiplier); got != 1.4 {
		t.Errorf("backoff-multiplier = %v", got)
	}
	if got := c.String(CheckpointingMode); got != "EXACTLY_ONCE" {
		t.Errorf("checkpointing mode = %q", got)
	}
	// Options without a default: unset, zero values.
	if c.IsSet(CheckpointingInterval) || c.Duration(CheckpointingInterval) != 0 {
		t.Errorf("checkpointing interval: set=%v %v", c.IsSet(CheckpointingInterval), c.Duration(CheckpointingInterval))
	}
	if got := c.String(RestartStrategy); got != "" {
		t.Errorf("restart-strategy.type = %q", got)
	}
	if got := c.String(CheckpointsDir); got != "" {
		t.Errorf("checkpoints dir = %q", got)
	}
	// A nil *Config reads as New().
	var nilCfg *Config
	if nilCfg.Int(TaskManagerNumberOfTaskSlots) != 1 || nilCfg.IsSet(LogLevel) || len(nilCfg.ToMap()) != 0 {
		t.Error("nil *Config does not read as defaults")
	}
}

func TestValueSyntaxPerType(t *testing.T) {
	tests := []struct {
		key, value string
		check      func(c *Config) any
		want       any
	}{
		{"heartbeat.interval", "500 ms", func(c *Config) any { return c.Duration(HeartbeatInterval) }, 500 * time.Millisecond},
		{"heartbeat.interval", "2min", func(c *Config) any { return c.Duration(HeartbeatInterval) }, 2 * time.Minute},
		{"heartbeat.interval", "1500", func(c *Config) any { return c.Duration(HeartbeatInterval) }, 1500 * time.Millisecond},
		{"taskmanager.memory.segment-size", "64 KiB", func(c *Config) any { return c.MemorySize(SegmentSize) }, int64(65536)},
		{"taskmanager.memory.segment-size", "4096", func(c *Config) any { return c.MemorySize(SegmentSize) }, int64(4096)},
		{"taskmanager.numberOfTaskSlots", " 4 ", func(c *Config) any { return c.Int(TaskManagerNumberOfTaskSlots) }, 4},
		{"cluster.evenly-spread-out-slots", "FALSE", func(c *Config) any { return c.Bool(ClusterEvenlySpreadOutSlots) }, false},
		{"cluster.evenly-spread-out-slots", "True", func(c *Config) any { return c.Bool(ClusterEvenlySpreadOutSlots) }, true},
		{"restart-strategy.exponential-delay.jitter-factor", "0.25", func(c *Config) any { return c.Float(ExponentialDelayJitterFactor) }, 0.25},
		{"metrics.reporter.prom.port", "9300-9310", func(c *Config) any { lo, hi := c.PortRange(MetricsPromPort); return [2]int{lo, hi} }, [2]int{9300, 9310}},
		{"metrics.reporter.prom.port", "0", func(c *Config) any { lo, hi := c.PortRange(MetricsPromPort); return [2]int{lo, hi} }, [2]int{0, 0}},
		{"taskmanager.rpc.port", "7000", func(c *Config) any { lo, hi := c.PortRange(TaskManagerRPCPort); return [2]int{lo, hi} }, [2]int{7000, 7000}},
		{"execution.checkpointing.mode", "at_least_once", func(c *Config) any { return c.String(CheckpointingMode) }, "AT_LEAST_ONCE"},
		{"log.format", "JSON", func(c *Config) any { return c.String(LogFormat) }, "json"},
		{"log.level", "Debug", func(c *Config) any { return c.String(LogLevel) }, "debug"},
		{"restart-strategy.type", "Fixed-Delay", func(c *Config) any { return c.String(RestartStrategy) }, "fixed-delay"},
		{"execution.checkpointing.storage", "FILESYSTEM", func(c *Config) any { return c.String(CheckpointStorage) }, "filesystem"},
		{"taskmanager.memory.process.size", "1728m", func(c *Config) any { return c.MemorySize(TaskManagerProcessSize) }, int64(1728 << 20)},
		{"heartbeat.interval", "10s", func(c *Config) any { return c.String(HeartbeatInterval) }, "10s"},
	}
	for _, tt := range tests {
		c, warns, err := FromMap(map[string]string{tt.key: tt.value})
		if err != nil || len(warns) != 0 {
			t.Errorf("%s=%q: warnings %q, err %v", tt.key, tt.value, warns, err)
			continue
		}
		if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s=%q: got %v, want %v", tt.key, tt.value, got, tt.want)
		}
	}
}

func TestInvalidValues(t *testing.T) {
	tests := []struct {
		key, value, want string
	}{
		{"heartbeat.interval", "abc", `invalid value "abc" for key "heartbeat.interval": want a duration like 500ms, 10 s or 2 min`},
		{"heartbeat.interval", "0", `invalid value "0" for key "heartbeat.interval": want a duration greater than 0`},
		{"execution.buffer-timeout", "-1", `invalid value "-1" for key "execution.buffer-timeout": want a duration like 500ms, 10 s or 2 min`},
		{"taskmanager.numberOfTaskSlots", "two", `invalid value "two" for key "taskmanager.numberOfTaskSlots": want an integer`},
		{"taskmanager.numberOfTaskSlots", "0", `invalid value "0" for key "taskmanager.numberOfTaskSlots": want an integer >= 1`},
		{"jobmanager.rpc.port", "70000", `invalid value "70000" for key "jobmanager.rpc.port": want an integer between 0 and 65535`},
		{"cluster.evenly-spread-out-slots", "yes", `invalid value "yes" for key "cluster.evenly-spread-out-slots": want true or false`},
		{"taskmanager.memory.segment-size", "32 parsecs", `invalid value "32 parsecs" for key "taskmanager.memory.segment-size": want a memory size like 32kb, 64 mb or 1 gb`},
		{"taskmanager.memory.segment-size", "0 kb", `invalid value "0 kb" for key "taskmanager.memory.segment-size": want a memory size greater than 0`},
		{"metrics.reporter.prom.port", "9260-9249", `invalid value "9260-9249" for key "metrics.reporter.prom.port": want a port, a port range like 9249-9260, or 0 for any free port`},
		{"log.format", "xml", `invalid value "xml" for key "log.format": want one of console, json`},
		{"restart-strategy.exponential-delay.jitter-factor", "1.5", `invalid value "1.5" for key "restart-strategy.exponential-delay.jitter-factor": want a number between 0 and 1`},
		{"restart-strategy.exponential-delay.backoff-multiplier", "NaN", `invalid value "NaN" for key "restart-strategy.exponential-delay.backoff-multiplier": want a number`},
		{"restart-strategy.exponential-delay.backoff-multiplier", "0.5", `invalid value "0.5" for key "restart-strategy.exponential-delay.backoff-multiplier": want a number >= 1`},
		{"execution.checkpointing.interval", "5ms", `invalid value "5ms" for key "execution.checkpointing.interval": want a duration >= 10ms`},
		// An older key is named as the user wrote it.
		{"restart-strategy", "sometimes", `invalid value "sometimes" for key "restart-strategy": want one of none, off, disable, fixed-delay, exponential-delay, failure-rate`},
	}
	for _, tt := range tests {
		_, _, err := FromMap(map[string]string{tt.key: tt.value})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s=%q: err = %v\nwant %s", tt.key, tt.value, err, tt.want)
		}
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Key != tt.key || ve.Value != tt.value {
			t.Errorf("%s=%q: err %v is not a *ValueError naming key and value", tt.key, tt.value, err)
		}
	}

	// Several invalid values are all reported, sorted by key.
	_, _, err := FromMap(map[string]string{"log.level": "loud", "heartbeat.timeout": "x"})
	want := `invalid value "x" for key "heartbeat.timeout": want a duration like 500ms, 10 s or 2 min` + "\n" +
		`invalid value "loud" for key "log.level": want one of debug, info, warn, error`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestParseYAMLFlatNestedEquivalence(t *testing.T) {
	want := map[string]string{
		"taskmanager.numberOfTaskSlots":   "2",
		"taskmanager.memory.segment-size": "64 kb",
		"heartbeat.interval":              "5 s",
		"jobmanager.rpc.address":          "10.0.0.1",
	}
	docs := map[string]string{
		"flat": `
taskmanager.numberOfTaskSlots: 2
taskmanager.memory.segment-size: 64 kb
heartbeat.interval: 5 s
jobmanager.rpc.address: 10.0.0.1
`,
		"nested": `
taskmanager:
  numberOfTaskSlots: 2
  memory:
    segment-size: 64 kb
heartbeat:
  interval: 5 s
jobmanager:
  rpc:
    address: 10.0.0.1
`,
		"mixed": `
taskmanager:
  numberOfTaskSlots: 2
  memory.segment-size: 64 kb
heartbeat: {interval: 5 s}
jobmanager.rpc:
  address: "10.0.0.1"
`,
	}
	for name, doc := range docs {
		got, err := ParseYAML([]byte(doc))
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("%s: got %v, %v; want %v", name, got, err, want)
		}
	}
}

func TestParseYAMLScalarsKeptAsWritten(t *testing.T) {
	got, err := ParseYAML([]byte("a: 010\nb: 1.0\nc: TRUE\nd: ~\ne:\nf: 'x: y'\ng: &x 3\nh: *x\n"))
	want := map[string]string{"a": "010", "b": "1.0", "c": "TRUE", "d": "", "e": "", "f": "x: y", "g": "3", "h": "3"}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, doc := range []string{"", "# only a comment\n", "~\n"} {
		got, err := ParseYAML([]byte(doc))
		if err != nil || len(got) != 0 {
			t.Errorf("ParseYAML(%q) = %v, %v; want empty", doc, got, err)
		}
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := []struct{ doc, want string }{
		{"taskmanager.numberOfTaskSlots: 2\ntaskmanager:\n  numberOfTaskSlots: 3\n", `line 3: key "taskmanager.numberOfTaskSlots" is set twice`},
		{"a:\n  - 1\n  - 2\n", `line 1: key "a": lists are not supported as configuration values`},
		{"- a\n- b\n", `line 1: configuration must be a mapping of keys to values`},
		{"just a string\n", `line 1: configuration must be a mapping of keys to values`},
		{"[a]: 1\n", `line 1: configuration keys must be strings`},
		{"a: b: c\n", `parse YAML: yaml: mapping values are not allowed in this context`},
	}
	for _, tt := range tests {
		_, err := ParseYAML([]byte(tt.doc))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseYAML(%q) err = %v, want %s", tt.doc, err, tt.want)
		}
	}
}

// TestParseYAMLAliasBomb: aliases that repeat mappings of aliases ("billion laughs") must not expand without bound.
func TestParseYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n")
	for l := 1; l < 9; l++ { // 10^9 keys
		fmt.Fprintf(&b, "l%d: &l%d {", l, l)
		for i := range 10 {
			fmt.Fprintf(&b, "k%d: *l%d, ", i, l-1)
		}
		b.WriteString("}\n")
	}
	_, err := ParseYAML([]byte(b.String()))
	if want := "line 2: configuration has more than 10000 keys (do YAML aliases repeat a mapping?)"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}

	// One key per level, each level's key nesting the previous one's: quadratic in the document's size.
	b.Reset()
	b.WriteString("l0: &l0 {v: 1}\n")
	long := strings.Repeat("k", 100)
	for l := 1; l < 20; l++ {
		fmt.Fprintf(&b, "l%d: &l%d {%s: *l%d}\n", l, l, long, l-1)
	}
	_, err = ParseYAML([]byte(b.String()))
	if want := `line 2: key "l11.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"... is longer than 1024 bytes`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestFlattenMap(t *testing.T) {
	got, err := FlattenMap(map[string]any{
		"execution.checkpointing": map[string]any{"interval": "10 s", "mode": "AT_LEAST_ONCE"},
		"parallelism":             map[any]any{"default": 4},
		"restart-strategy.exponential-delay.jitter-factor": 0.5,
		"cluster.evenly-spread-out-slots":                  false,
		"pipeline.max-parallelism":                         int64(256),
		"s3.region":                                        nil,
	})
	want := map[string]string{
		"execution.checkpointing.interval":                 "10 s",
		"execution.checkpointing.mode":                     "AT_LEAST_ONCE",
		"parallelism.default":                              "4",
		"restart-strategy.exponential-delay.jitter-factor": "0.5",
		"cluster.evenly-spread-out-slots":                  "false",
		"pipeline.max-parallelism":                         "256",
		"s3.region":                                        "",
	}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	_, err = FlattenMap(map[string]any{"a": map[string]any{"b": 1}, "a.b": 2})
	if err == nil || err.Error() != `key "a.b" is set twice` {
		t.Errorf("duplicate: err = %v", err)
	}
	_, err = FlattenMap(map[string]any{"a": []any{1}})
	if err == nil || err.Error() != `key "a": lists are not supported as configuration values` {
		t.Errorf("list: err = %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverridesPrecedence(t *testing.T) {
	p := writeFile(t, `
taskmanager:
  numberOfTaskSlots: 2
heartbeat.interval: 5 s
log.level: debug
`)
	c, warns, err := Load(p, []string{"taskmanager.numberOfTaskSlots=8", "log.format = json", "log.level="})
	if err != nil || len(warns) != 0 {
		t.Fatalf("Load: %q, %v", warns, err)
	}
	if got := c.Int(TaskManagerNumberOfTaskSlots); got != 8 {
		t.Errorf("-D did not override the file: slots = %d", got)
	}
	if got := c.Duration(HeartbeatInterval); got != 5*time.Second {
		t.Errorf("file value lost: heartbeat.interval = %v", got)
	}
	if got := c.String(LogFormat); got != "json" {
		t.Errorf("-D with spaces: log.format = %q", got)
	}
	if c.IsSet(LogLevel) || c.String(LogLevel) != "info" {
		t.Errorf("empty -D value must reset to default: set=%v %q", c.IsSet(LogLevel), c.String(LogLevel))
	}
	want := map[string]string{"taskmanager.numberOfTaskSlots": "8", "heartbeat.interval": "5 s", "log.format": "json"}
	if got := c.ToMap(); !maps.Equal(got, want) {
		t.Errorf("ToMap = %v, want %v", got, want)
	}

	// No file: defaults plus -D.
	c, _, err = Load("", []string{"parallelism.default=3"})
	if err != nil || c.Int(Parallelism) != 3 {
		t.Errorf("Load without file: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	p := writeFile(t, "heartbeat.interval: abc\n")
	_, _, err := Load(p, nil)
	want := `config file "` + p + `": invalid value "abc" for key "heartbeat.interval": want a duration like 500ms, 10 s or 2 min`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// -D fixes the bad file value: validation happens after the layers are merged.
	if _, _, err := Load(p, []string{"heartbeat.interval=1 s"}); err != nil {
		t.Errorf("-D over an invalid file value: %v", err)
	}
	_, _, err = Load("", []string{"slot.request.timeout=forever"})
	want = `-D: invalid value "forever" for key "slot.request.timeout": want a duration like 500ms, 10 s or 2 min`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	_, _, err = Load("", []string{"novalue"})
	if err == nil || err.Error() != `invalid -D override "novalue": want key=value` {
		t.Errorf("err = %v", err)
	}
	_, _, err = Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	p = writeFile(t, "a: [1]\n")
	_, _, err = Load(p, nil)
	if err == nil || err.Error() != `config file "`+p+`": line 1: key "a": lists are not supported as configuration values` {
		t.Errorf("err = %v", err)
	}
}

func TestUnknownKeyIsWarning(t *testing.T) {
	p := writeFile(t, "taskmanager.numberOfTaskSlot: 2\nmy.connector.url: http://x\nHEARTBEAT.INTERVAL: 1 s\n")
	c, warns, err := Load(p, []string{"jobmanager.rpc.adress=x"})
	if err != nil {
		t.Fatal(err)
	}
	f := `config file "` + p + `": `
	want := []string{
		f + `unknown configuration key "HEARTBEAT.INTERVAL" (did you mean "heartbeat.interval"?)`,
		f + `unknown configuration key "my.connector.url"`,
		f + `unknown configuration key "taskmanager.numberOfTaskSlot" (did you mean "taskmanager.numberOfTaskSlots"?)`,
		`-D: unknown configuration key "jobmanager.rpc.adress" (did you mean "jobmanager.rpc.address"?)`,
	}
	if !slices.Equal(warns, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
	}
	// Unknown keys are kept and travel with ToMap; they do not change declared options.
	if v, ok := c.Get("my.connector.url"); !ok || v != "http://x" {
		t.Errorf("Get(my.connector.url) = %q, %v", v, ok)
	}
	if c.Int(TaskManagerNumberOfTaskSlots) != 1 {
		t.Error("a misspelt key changed the option")
	}
}

func TestFallbackKeys(t *testing.T) {
	tests := []struct {
		name   string
		layers []map[string]string // applied with FromMap then With
		opt    *Option
		want   string
		warns  []string
	}{
		{
			name:   "older name alone",
			layers: []map[string]string{{"state.checkpoints.dir": "file:///old"}},
			opt:    CheckpointsDir, want: "file:///old",
			warns: []string{`configuration key "state.checkpoints.dir" is deprecated, use "execution.checkpointing.dir"`},
		},
		{
			name:   "savepoints",
			layers: []map[string]string{{"state.savepoints.dir": "file:///sp"}},
			opt:    SavepointDir, want: "file:///sp",
			warns: []string{`configuration key "state.savepoints.dir" is deprecated, use "execution.checkpointing.savepoint-dir"`},
		},
		{
			name:   "canonical wins within a layer",
			layers: []map[string]string{{"state.checkpoints.dir": "file:///old", "execution.checkpointing.dir": "file:///new"}},
			opt:    CheckpointsDir, want: "file:///new",
			warns: []string{`configuration key "state.checkpoints.dir" is deprecated and ignored because "execution.checkpointing.dir" is set`},
		},
		{
			name:   "later layer wins whichever name",
			layers: []map[string]string{{"execution.checkpointing.dir": "file:///cluster"}, {"state.checkpoints.dir": "file:///job"}},
			opt:    CheckpointsDir, want: "file:///job",
			warns: []string{`configuration key "state.checkpoints.dir" is deprecated, use "execution.checkpointing.dir"`},
		},
		{
			name:   "enum through older name",
			layers: []map[string]string{{"restart-strategy": "FAILURE-RATE"}},
			opt:    RestartStrategy, want: "failure-rate",
			warns: []string{`configuration key "restart-strategy" is deprecated, use "restart-strategy.type"`},
		},
	}
	for _, tt := range tests {
		c, warns, err := FromMap(tt.layers[0])
		for _, l := range tt.layers[1:] {
			var w []string
			c, w, err = c.With(l)
			warns = append(warns, w...)
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := c.String(tt.opt); got != tt.want || !c.IsSet(tt.opt) {
			t.Errorf("%s: %s = %q (set %v), want %q", tt.name, tt.opt.Key, got, c.IsSet(tt.opt), tt.want)
		}
		if !slices.Equal(warns, tt.warns) {
			t.Errorf("%s: warnings %q, want %q", tt.name, warns, tt.warns)
		}
		// ToMap uses the canonical name.
		if _, ok := c.ToMap()[tt.opt.Key]; !ok {
			t.Errorf("%s: ToMap %v lacks %s", tt.name, c.ToMap(), tt.opt.Key)
		}
		if v, ok := c.Get(tt.opt.FallbackKeys[0]); !ok || v != c.ToMap()[tt.opt.Key] {
			t.Errorf("%s: Get by older name = %q, %v", tt.name, v, ok)
		}
	}
}

func TestWithJobOverrides(t *testing.T) {
	cluster, _, err := FromMap(map[string]string{
		"parallelism.default":              "2",
		"execution.checkpointing.interval": "10 s",
		"heartbeat.interval":               "3 s",
	})
	if err != nil {
		t.Fatal(err)
	}
	jobCfg, err := FlattenMap(map[string]any{
		"parallelism":             map[string]any{"default": 8},
		"execution.checkpointing": map[string]any{"interval": nil, "mode": "at_least_once"},
	})
	if err != nil {
		t.Fatal(err)
	}
	job, warns, err := cluster.With(jobCfg)
	if err != nil || len(warns) != 0 {
		t.Fatalf("With: %q, %v", warns, err)
	}
	if job.Int(Parallelism) != 8 {
		t.Errorf("job parallelism = %d, want 8", job.Int(Parallelism))
	}
	if job.IsSet(CheckpointingInterval) {
		t.Error("a null job value must reset the cluster's value (checkpointing disabled)")
	}
	if job.String(CheckpointingMode) != "AT_LEAST_ONCE" || job.Duration(HeartbeatInterval) != 3*time.Second {
		t.Errorf("job mode %q heartbeat %v", job.String(CheckpointingMode), job.Duration(HeartbeatInterval))
	}
	// The cluster config is unchanged.
	if cluster.Int(Parallelism) != 2 || cluster.Duration(CheckpointingInterval) != 10*time.Second || cluster.IsSet(CheckpointingMode) {
		t.Error("With modified its receiver")
	}
	// An invalid job value fails at submission, naming key and value.
	_, _, err = cluster.With(map[string]string{"parallelism.default": "0"})
	if err == nil || err.Error() != `invalid value "0" for key "parallelism.default": want an integer >= 1` {
		t.Errorf("err = %v", err)
	}
}

func TestToMapRoundTrip(t *testing.T) {
	in := map[string]string{
		"heartbeat.interval":          "2 s",
		"execution.checkpointing.dir": "file:///x",
		"custom.key":                  "v",
		"metrics.reporter.prom.port":  "9300-9301",
	}
	c, _, err := FromMap(in)
	if err != nil {
		t.Fatal(err)
	}
	m := c.ToMap()
	m["heartbeat.interval"] = "mutated" // ToMap returns a copy
	c2, _, err := FromMap(c.ToMap())
	if err != nil || !maps.Equal(c2.ToMap(), in) || !reflect.DeepEqual(c2.parsed, c.parsed) {
		t.Errorf("round trip: %v, %v", c2.ToMap(), err)
	}
}

func TestGetterPanicsOnProgrammerError(t *testing.T) {
	mustPanic := func(name, want string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			if s, _ := r.(string); s != want {
				t.Errorf("%s: panic %v, want %q", name, r, want)
			}
		}()
		f()
	}
	c := New()
	mustPanic("wrong type", `config: Int called on option "heartbeat.interval" of type duration`, func() { c.Int(HeartbeatInterval) })
	mustPanic("wrong type", `config: Duration called on option "taskmanager.data.port" of type port range`, func() { c.Duration(TaskManagerDataPort) })
	undeclared := &Option{Key: "x.y", Type: TypeInt, Default: "1"}
	mustPanic("undeclared", `config: option "x.y" is not declared in package config`, func() { c.Int(undeclared) })
}

func TestOptionsDeclaration(t *testing.T) {
	opts := Options()
	if len(opts) != len(allOptions) {
		t.Fatalf("Options() has %d, allOptions %d", len(opts), len(allOptions))
	}
	if !slices.IsSortedFunc(opts, func(a, b *Option) int { return strings.Compare(a.Key, b.Key) }) {
		t.Error("Options() is not sorted by key")
	}
	for _, o := range opts {
		if o.Description == "" {
			t.Errorf("%s has no description", o.Key)
		}
		if (o.Type == TypeEnum) != (len(o.Values) > 0) {
			t.Errorf("%s: Values must be set exactly for enums", o.Key)
		}
		if got, ok := Lookup(o.Key); !ok || got != o {
			t.Errorf("Lookup(%s) failed", o.Key)
		}
		for _, fk := range o.FallbackKeys {
			if got, ok := Lookup(fk); !ok || got != o {
				t.Errorf("Lookup(%s) failed", fk)
			}
		}
	}
	if _, ok := Lookup("no.such.key"); ok {
		t.Error("Lookup of an unknown key succeeded")
	}
}
