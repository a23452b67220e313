package config

import (
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/internal/fuzzcheck"
)

// A Flink distribution's own configuration file, in the 2.x YAML form and the
// legacy flat form, loads without an unknown key or an error: Flink's keys
// without a meaning for weir come in one line, and the keys weir has are read.
func TestFlinkDistributionConfig(t *testing.T) {
	cases := []struct {
		file string
		want []string // the warnings, exactly
		dirs string   // execution.checkpointing.dir as read
	}{
		{"testdata/flink-config.yaml", []string{
			`config file "testdata/flink-config.yaml": configuration key "execution.checkpointing.unaligned" is deprecated, use "execution.checkpointing.unaligned.enabled"`,
			`config file "testdata/flink-config.yaml": configuration keys not applicable to weir, ignored: ` +
				`env.java.opts.all (JVM options of Flink's start scripts: weir's daemons are Go programs, with no JVM); ` +
				`rest.address, rest.bind-address (Flink's REST API and web UI: weir's API is gRPC on jobmanager.rpc.port (the weir command)); ` +
				`jobmanager.execution.failover-strategy (failover regions: weir restarts every task of a failed job); ` +
				`state.backend.type (the state backend choice: weir keeps keyed state on the Go heap (Flink's hashmap) and snapshots it in full); ` +
				`execution.checkpointing.incremental (incremental checkpoints: weir's checkpoints are full snapshots)`,
		}, "file:///tmp/flink-checkpoints"},
		{"testdata/flink-conf.yaml", []string{
			`config file "testdata/flink-conf.yaml": configuration key "state.checkpoints.dir" is deprecated, use "execution.checkpointing.dir"`,
			`config file "testdata/flink-conf.yaml": configuration key "state.savepoints.dir" is deprecated, use "execution.checkpointing.savepoint-dir"`,
			`config file "testdata/flink-conf.yaml": configuration keys not applicable to weir, ignored: ` +
				`env.java.opts.all (JVM options of Flink's start scripts: weir's daemons are Go programs, with no JVM); ` +
				`rest.address, rest.bind-address (Flink's REST API and web UI: weir's API is gRPC on jobmanager.rpc.port (the weir command)); ` +
				`jobmanager.execution.failover-strategy (failover regions: weir restarts every task of a failed job); ` +
				`state.backend.incremental, state.backend.type (the state backend choice: weir keeps keyed state on the Go heap (Flink's hashmap) and snapshots it in full)`,
		}, "file:///tmp/flink-checkpoints"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c, warns, err := Load(tc.file, []string{"jobmanager.rpc.port=0"})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(warns, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(tc.want, "\n"))
			}
			got := []any{
				c.String(JobManagerBindHost), c.String(TaskManagerBindHost), c.String(TaskManagerHost), c.Int(JobManagerRPCPort),
				c.MemorySize(JobManagerProcessSize), c.MemorySize(TaskManagerProcessSize), c.Int(TaskManagerNumberOfTaskSlots),
				c.Duration(CheckpointingInterval), c.String(CheckpointsDir), c.String(CheckpointingMode),
			}
			want := []any{"localhost", "localhost", "localhost", 0, int64(1600 << 20), int64(1728 << 20), 1,
				3 * time.Minute, tc.dirs, "EXACTLY_ONCE"}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("value %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestNotApplicable(t *testing.T) {
	for key, want := range map[string]bool{
		"env.java.opts.all":                    true,
		"env.log.dir":                          true,
		"rest.port":                            true,
		"web.submit.enable":                    true,
		"classloader.resolve-order":            true,
		"jobmanager.memory.jvm-metaspace.size": true,
		"taskmanager.memory.jvm-overhead.min":  true,
		"taskmanager.memory.managed.fraction":  true,
		"metrics.reporter.prom.factory.class":  true,
		"pipeline.jars":                        true,
		"pipeline.jarsx":                       false,
		"restx":                                false,
		// Declared options, and their older names, are never not applicable.
		"taskmanager.memory.process.size":     false,
		"taskmanager.memory.segment-size":     false,
		"taskmanager.network.memory.fraction": false,
		"metrics.reporter.prom.port":          false,
		"io.allowed-paths":                    false,
		"my.connector.url":                    false,
	} {
		if _, got := NotApplicable(key); got != want {
			t.Errorf("NotApplicable(%q) = %v, want %v", key, got, want)
		}
	}
	// Reported once per layer, never as unknown, and kept.
	c, warns, err := FromMap(map[string]string{"rest.port": "8081", "web.submit.enable": "false", "heartbeat.intervall": "1 s"})
	want := `unknown configuration key "heartbeat.intervall" (did you mean "heartbeat.interval"?)` + "\n" +
		`configuration keys not applicable to weir, ignored: rest.port (Flink's REST API and web UI: weir's API is gRPC on jobmanager.rpc.port (the weir command)); ` +
		`web.submit.enable (Flink's web UI: weir has none)`
	if err != nil || strings.Join(warns, "\n") != want {
		t.Errorf("warnings = %q, %v\nwant %q", warns, err, want)
	}
	if v, ok := c.Get("rest.port"); !ok || v != "8081" {
		t.Errorf("rest.port not kept: %q %v", v, ok)
	}
}

func TestParseFlinkConf(t *testing.T) {
	m, warns, err := ParseFlinkConf([]byte("a.b: 1\n  # comment\nc: x: y # trailing\nbroken line\nd:\na.b: 2\nurl: http://h:1/p\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.b": "2", "c": "x: y", "url": "http://h:1/p"}
	if len(m) != len(want) {
		t.Errorf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	wantW := `line 4: not a "key: value" pair, skipped: "broken line"` + "\n" + `line 5: not a "key: value" pair, skipped: "d:"`
	if strings.Join(warns, "\n") != wantW {
		t.Errorf("warnings %q, want %q", warns, wantW)
	}
}

// A cluster option in a job's config: is refused, naming the key as written
// and where it belongs; job options are taken.
func TestWithJobScope(t *testing.T) {
	for key, want := range map[string]string{
		"taskmanager.numberOfTaskSlots":  "taskmanager.numberOfTaskSlots is a cluster setting (set it in the TaskManager's config.yaml), not a job setting",
		"jobstore.max-capacity":          "jobstore.max-capacity is a cluster setting (set it in the JobManager's config.yaml), not a job setting",
		"heartbeat.interval":             "heartbeat.interval is a cluster setting (set it in the config.yaml of the JobManager and the TaskManagers), not a job setting",
		"taskmanager.network.memory.min": "taskmanager.network.memory.min is a cluster setting (set it in the TaskManager's config.yaml), not a job setting",
		"state.checkpoints.dir":          "",
		"parallelism.default":            "",
		"restart-strategy.type":          "",
	} {
		val := "1"
		if key == "state.checkpoints.dir" {
			val = "/tmp/x"
		} else if key == "restart-strategy.type" {
			val = "none"
		} else if key == "heartbeat.interval" || key == "taskmanager.network.memory.min" {
			val = "1 s"
		}
		_, _, err := New().WithJob(map[string]string{key: val})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("WithJob(%s) = %q, want %q", key, got, want)
		}
	}
}

func TestEveryOptionHasAScope(t *testing.T) {
	for _, o := range Options() {
		if o.Scope < ScopeCluster || o.Scope > ScopeBoth {
			t.Errorf("%s has no scope", o.Key)
		}
	}
}

// A list, the value of a Flink key that does not apply, loads as Flink's
// flat form; weir's own keys and unknown keys still refuse lists.
func TestNotApplicableLists(t *testing.T) {
	m, err := ParseYAML([]byte("pipeline:\n  jars: [a.jar, b.jar]\nenv.java.opts.all:\n  - -Xmx1g\n  - -Dx=y\n"))
	if err != nil || m["pipeline.jars"] != "a.jar;b.jar" || m["env.java.opts.all"] != "-Xmx1g;-Dx=y" {
		t.Errorf("got %v, %v", m, err)
	}
	for doc, want := range map[string]string{
		"parallelism.default: [1, 2]\n": `line 1: key "parallelism.default": lists are not supported as configuration values`,
		"my.list: [1]\n":                `line 1: key "my.list": lists are not supported as configuration values`,
		"pipeline.jars: [[a.jar]]\n":    `line 1: key "pipeline.jars": lists are not supported as configuration values`,
		"pipeline.jars: [{a: b.jar}]\n": `line 1: key "pipeline.jars": lists are not supported as configuration values`,
	} {
		if _, err := ParseYAML([]byte(doc)); err == nil || err.Error() != want {
			t.Errorf("%q: err %v, want %s", doc, err, want)
		}
	}
}

// A list of aliases to a long scalar would be copied once per element when
// joined: the bytes joined per document are bounded.
func TestNotApplicableListsBounded(t *testing.T) {
	doc := "x: &a " + strings.Repeat("y", 4096) + "\npipeline.jars: [" + strings.Repeat("*a, ", 300) + "*a]\n"
	_, err := ParseYAML([]byte(doc))
	want := `line 2: key "pipeline.jars": the configuration's lists join to more than 1048576 bytes (do YAML aliases repeat a value?)`
	if err == nil || err.Error() != want {
		t.Errorf("err %v, want %s", err, want)
	}
}

func FuzzParseFlinkConf(f *testing.F) {
	f.Add([]byte("jobmanager.rpc.address: localhost\n# c\nenv.java.opts.all: -Xmx1g # x\nbad\n:\nk: \n"))
	f.Add([]byte("a: b: c\r\na: d\n\n\t x : y \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			m   map[string]string
			err error
		)
		fuzzcheck.BoundedAlloc(t, "ParseFlinkConf", len(data), 1<<20, 64, func() { m, _, err = ParseFlinkConf(data) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "read: ") {
				t.Fatalf("error %q says neither what failed nor where", err)
			}
			return
		}
		if len(m) > maxKeys {
			t.Fatalf("%d keys, more than %d", len(m), maxKeys)
		}
		for k, v := range m {
			if k == "" || v == "" || len(k) > maxKeyLen || strings.Contains(k+v, "#") || strings.TrimSpace(k) != k || strings.TrimSpace(v) != v {
				t.Fatalf("key %q value %q", k, v)
			}
		}
	})
}
