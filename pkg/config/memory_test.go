package config

import (
	"testing"
)

func TestDeriveNetworkMemory(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name    string
		set     map[string]string
		want    NetworkMemory
		ok      bool
		wantErr string
	}{
		{"no process size: no budget", nil, NetworkMemory{}, false, ""},
		// Flink's config.yaml: 0.1 × 1728m = 172.8m, within [64m, inf).
		{"fraction", map[string]string{"taskmanager.memory.process.size": "1728m"},
			NetworkMemory{Bytes: 5529 * 32 * 1024, Buffers: 5529, SegmentSize: 32 * 1024}, true, ""},
		{"raised to min", map[string]string{"taskmanager.memory.process.size": "256 mb"},
			NetworkMemory{Bytes: 64 * mb, Buffers: 2048, SegmentSize: 32 * 1024}, true, ""},
		{"lowered to max", map[string]string{"taskmanager.memory.process.size": "16g", "taskmanager.memory.network.max": "1gb"},
			NetworkMemory{Bytes: 1 << 30, Buffers: 32768, SegmentSize: 32 * 1024}, true, ""},
		{"exact size, older names, other segment size", map[string]string{"taskmanager.memory.process.size": "1g",
			"taskmanager.network.memory.min": "100m", "taskmanager.network.memory.max": "100m", "taskmanager.memory.segment-size": "64k"},
			NetworkMemory{Bytes: 1600 * 64 * 1024, Buffers: 1600, SegmentSize: 64 * 1024}, true, ""},
		{"min above max", map[string]string{"taskmanager.memory.process.size": "1g", "taskmanager.memory.network.max": "10m"},
			NetworkMemory{}, false, "taskmanager.memory.network.min (67108864 bytes) is above taskmanager.memory.network.max (10485760 bytes)"},
		{"min fills the process", map[string]string{"taskmanager.memory.process.size": "64m"},
			NetworkMemory{}, false, "network memory of 67108864 bytes (taskmanager.memory.network.fraction 0.1, taskmanager.memory.network.min 67108864 bytes) leaves nothing of taskmanager.memory.process.size 67108864 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := FromMap(tc.set)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := DeriveNetworkMemory(c)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tc.want || ok != tc.ok || gotErr != tc.wantErr {
				t.Errorf("= %+v %v %q, want %+v %v %q", got, ok, gotErr, tc.want, tc.ok, tc.wantErr)
			}
		})
	}
}

func TestProcessSizeSyntax(t *testing.T) {
	for in, want := range map[string]int64{"1728m": 1728 << 20, "2 gb": 2 << 30, "1600 MiB": 1600 << 20, "1073741824": 1 << 30, "1t": 1 << 40} {
		c, _, err := FromMap(map[string]string{"jobmanager.memory.process.size": in})
		if err != nil || c.MemorySize(JobManagerProcessSize) != want {
			t.Errorf("%q: %v, %v; want %d", in, c.MemorySize(JobManagerProcessSize), err, want)
		}
	}
	_, _, err := FromMap(map[string]string{"taskmanager.memory.process.size": "1728 furlongs"})
	if want := `invalid value "1728 furlongs" for key "taskmanager.memory.process.size": want a memory size like 32kb, 64 mb or 1 gb`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	_, _, err = FromMap(map[string]string{"taskmanager.memory.process.size": "100k"})
	if want := `invalid value "100k" for key "taskmanager.memory.process.size": want a memory size >= 1048576 bytes`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
