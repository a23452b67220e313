package config

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// notApplicable lists Flink's configuration keys that have no meaning for
// weir, by prefix (ending in "." or "-") or whole key, each with the reason
// it is shown to the user. A Flink distribution's config.yaml sets several of
// them; they are reported once, in one line, as not applicable rather than
// as unknown keys (which would suggest a typo), and otherwise kept like
// unknown keys. A declared option always wins over this list, and the first
// matching entry wins, so a narrower prefix goes before a wider one.
var notApplicable = []struct{ prefix, why string }{
	{"env.java.", "JVM options of Flink's start scripts: weir's daemons are Go programs, with no JVM"},
	{"env.", "environment of Flink's start scripts (log, pid and Hadoop directories): weir's daemons log to stderr and are started by a service manager"},
	{"jobmanager.memory.jvm-", "JVM metaspace and overhead: there is no JVM; jobmanager.memory.process.size is the whole budget"},
	{"taskmanager.memory.jvm-", "JVM metaspace and overhead: there is no JVM; taskmanager.memory.process.size is the whole budget"},
	{"jobmanager.memory.", "JVM memory components: there is no JVM; jobmanager.memory.process.size is the whole budget"},
	{"taskmanager.memory.managed.", "managed memory (RocksDB, batch operators): weir keeps state on the Go heap"},
	{"taskmanager.memory.", "JVM memory components: there is no JVM; taskmanager.memory.process.size is the whole budget, network memory is taken from it"},
	{"rest.", "Flink's REST API and web UI: weir's API is gRPC on jobmanager.rpc.port (the weir command)"},
	{"web.", "Flink's web UI: weir has none"},
	{"historyserver.", "Flink's HistoryServer: weir has none"},
	{"jobmanager.archive.", "Flink's HistoryServer archive: weir has none"},
	{"classloader.", "class loading of user jars: weir jobs are YAML files of built-in operators"},
	{"pipeline.jars", "user jars: weir jobs are YAML files of built-in operators"},
	{"pipeline.classpaths", "user jars: weir jobs are YAML files of built-in operators"},
	{"python.", "PyFlink: weir jobs are YAML files of built-in operators"},
	{"table.", "Flink's Table API and SQL: weir has neither"},
	{"sql-client.", "Flink's Table API and SQL: weir has neither"},
	{"blob.", "Flink's BLOB server, which ships jars: weir ships none"},
	{"pekko.", "Flink's actor-based RPC: weir's RPC is gRPC"},
	{"akka.", "Flink's actor-based RPC: weir's RPC is gRPC"},
	{"taskmanager.network.netty.", "Flink's Netty transport: weir's data plane is its own TCP protocol"},
	{"jobmanager.execution.failover-strategy", "failover regions: weir restarts every task of a failed job"},
	{"jobmanager.scheduler", "Flink's choice of scheduler: weir has one"},
	{"jobmanager.adaptive-scheduler.", "Flink's adaptive scheduler: weir has one scheduler"},
	{"state.backend.", "the state backend choice: weir keeps keyed state on the Go heap (Flink's hashmap) and snapshots it in full"},
	{"execution.checkpointing.incremental", "incremental checkpoints: weir's checkpoints are full snapshots"},
	{"execution.checkpointing.local-backup.", "local recovery: weir restores from the checkpoint storage"},
	{"io.tmp.dirs", "spill directories of batch operators: weir does not spill"},
	{"fs.", "Flink's file systems: weir's paths are absolute or URIs with a built-in driver (file://, s3://)"},
	{"high-availability.zookeeper.", "ZooKeeper: weir's high availability uses etcd (high-availability.etcd.*)"},
	{"zookeeper.", "ZooKeeper: weir's high availability uses etcd (high-availability.etcd.*)"},
	{"security.kerberos.", "Kerberos: weir authenticates with TLS certificates (security.ssl.*)"},
	{"metrics.reporter.", "metric reporters: weir always serves Prometheus on metrics.reporter.prom.port"},
	{"metrics.reporters", "metric reporters: weir always serves Prometheus on metrics.reporter.prom.port"},
	{"kubernetes.", "Flink's Kubernetes integration: weir's daemons are deployed as ordinary processes"},
	{"yarn.", "Flink on YARN: weir's daemons are deployed as ordinary processes"},
}

// NotApplicable reports whether key is one of Flink's keys that has no
// meaning for weir, and why. A declared option (or its older name) is never
// not applicable.
func NotApplicable(key string) (why string, ok bool) {
	if _, declared := Lookup(key); declared {
		return "", false
	}
	for _, na := range notApplicable {
		if key == na.prefix || (strings.HasPrefix(key, na.prefix) && prefixEnds(na.prefix, key)) {
			return na.why, true
		}
	}
	return "", false
}

// prefixEnds reports whether p is a prefix of key at a word boundary: p ends
// in "." or "-", or key continues with one (pipeline.jars matches
// pipeline.jars.x but not pipeline.jarsx).
func prefixEnds(p, key string) bool {
	if strings.HasSuffix(p, ".") || strings.HasSuffix(p, "-") {
		return true
	}
	c := key[len(p)]
	return c == '.' || c == '-'
}

// notApplicableWarning renders the keys of one layer that are not applicable
// as one line, grouped by reason in the order of the list above, or "".
func notApplicableWarning(prefix string, keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	byWhy := map[string][]string{}
	for _, k := range keys {
		why, _ := NotApplicable(k)
		byWhy[why] = append(byWhy[why], k)
	}
	var parts []string
	seen := map[string]bool{}
	for _, na := range notApplicable {
		ks := byWhy[na.why]
		if len(ks) == 0 || seen[na.why] {
			continue
		}
		seen[na.why] = true
		sort.Strings(ks)
		parts = append(parts, strings.Join(ks, ", ")+" ("+na.why+")")
	}
	return fmt.Sprintf("%sconfiguration keys not applicable to weir, ignored: %s", prefix, strings.Join(parts, "; "))
}

// LegacyFlinkConfFile is the name of Flink 1.x's configuration file. Load
// reads a file of this name the way Flink 1.x did (ParseFlinkConf) instead of
// as YAML.
const LegacyFlinkConfFile = "flink-conf.yaml"

// ParseFlinkConf parses Flink 1.x's legacy flink-conf.yaml the way Flink's
// GlobalConfiguration did: one "key: value" per line, split at the first
// ": ", everything after a '#' a comment, keys and values trimmed, a later
// line winning over an earlier one. It is not YAML: values are never
// unquoted or nested. A line that is not "key: value" is skipped with a
// warning naming its number, as Flink logs it.
func ParseFlinkConf(data []byte) (map[string]string, []string, error) {
	out := map[string]string{}
	var warnings []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			warnings = append(warnings, fmt.Sprintf("line %d: not a \"key: value\" pair, skipped: %q", n, clip(line, 80)))
			continue
		}
		if len(k) > maxKeyLen {
			return nil, nil, fmt.Errorf("line %d: key %q... is longer than %d bytes", n, k[:64], maxKeyLen)
		}
		if _, dup := out[k]; !dup && len(out) >= maxKeys {
			return nil, nil, fmt.Errorf("line %d: configuration has more than %d keys", n, maxKeys)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return out, warnings, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
