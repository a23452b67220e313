package main

import (
	"testing"

	"github.com/weirstream/weir/pkg/daemon/daemontest"
)

// The jobmanager starts from a Flink distribution's own configuration file
// (daemontest.StartsFromFlinkConfigs); its jobmanager.memory.process.size,
// 1600m, is Go's memory limit.
func TestStartsFromFlinkConfig(t *testing.T) {
	daemontest.StartsFromFlinkConfigs(t, "jobmanager", start,
		[]string{"jobmanager.rpc.port=0", "metrics.reporter.prom.port=0"}, 1600<<20)
}
