package main

import (
	"testing"

	"github.com/weirstream/weir/pkg/daemon/daemontest"
)

// The taskmanager starts from a Flink distribution's own configuration file
// (daemontest.StartsFromFlinkConfigs); its taskmanager.memory.process.size,
// 1728m, is Go's memory limit, with network memory inside it as Flink
// computes it.
func TestStartsFromFlinkConfig(t *testing.T) {
	daemontest.StartsFromFlinkConfigs(t, "taskmanager", start,
		[]string{"jobmanager.rpc.port=1", "taskmanager.rpc.port=0", "metrics.reporter.prom.port=0"}, 1728<<20,
		"network memory", // 0.1 × 1728m in 32 KiB buffers
		`"buffers": 5529`)
}
