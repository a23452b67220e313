package jobgraph

import (
	"fmt"
	"testing"
)

// A job's parallelism and max-parallelism come from, first found: the job
// file's field, its config: (parallelism.default, pipeline.max-parallelism),
// the cluster's configuration, weir's default.
func TestParallelismPrecedence(t *testing.T) {
	const ops = "operators:\n- id: a\n  type: test-source\n- id: b\n  type: test-source\n  parallelism: 2\n"
	cases := []struct {
		name     string
		head     string
		opts     ParseOptions
		par, max int
		wantErr  string
	}{
		{"defaults", "", ParseOptions{}, 1, 128, ""},
		{"cluster", "", ParseOptions{DefaultParallelism: 3, DefaultMaxParallelism: 64}, 3, 64, ""},
		{"job config over cluster", "config: {parallelism.default: 4, pipeline.max-parallelism: 32}\n",
			ParseOptions{DefaultParallelism: 3, DefaultMaxParallelism: 64}, 4, 32, ""},
		{"nested job config", "config:\n  parallelism:\n    default: 5\n", ParseOptions{DefaultParallelism: 3}, 5, 128, ""},
		{"fields over job config", "parallelism: 6\nmax-parallelism: 16\nconfig: {parallelism.default: 4, pipeline.max-parallelism: 32}\n",
			ParseOptions{DefaultParallelism: 3, DefaultMaxParallelism: 64}, 6, 16, ""},
		{"empty value resets to the cluster's", "config: {parallelism.default: }\n", ParseOptions{DefaultParallelism: 3}, 3, 128, ""},
		{"job config above max-parallelism", "max-parallelism: 2\nconfig: {parallelism.default: 4}\n", ParseOptions{}, 0, 0,
			"j.yaml: config: parallelism.default 4 is above max-parallelism 2"},
		{"invalid job config value", "config: {parallelism.default: many}\n", ParseOptions{}, 0, 0,
			`j.yaml: config: invalid value "many" for key "parallelism.default": want an integer`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, _, err := ParseWithOptions([]byte("name: j\n"+tc.head+ops), "j.yaml", tc.opts)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprint(g.Parallelism, g.MaxParallelism, g.Operators[0].Parallelism, g.Operators[1].Parallelism)
			if want := fmt.Sprint(tc.par, tc.max, tc.par, 2); got != want {
				t.Errorf("parallelism, max-parallelism, a, b = %s, want %s", got, want)
			}
		})
	}
}
