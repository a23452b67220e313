package config

import "testing"

// weir.expression.cost-limit: at least 1 (0 would fail every expression,
// and "unlimited" must not be one keystroke away), up to the largest
// integer; a job's config: section overrides the cluster's.
func TestExpressionCostLimit(t *testing.T) {
	if got := New().Int(ExpressionCostLimit); got != 1000000 {
		t.Fatalf("default %d", got)
	}
	for _, tt := range []struct {
		value string
		want  int
		err   string
	}{
		{"1", 1, ""},
		{"5000", 5000, ""},
		{" 250000 ", 250000, ""},
		{"9223372036854775807", 9223372036854775807, ""},
		{"0", 0, `invalid value "0" for key "weir.expression.cost-limit": want an integer >= 1`},
		{"-1", 0, `invalid value "-1" for key "weir.expression.cost-limit": want an integer >= 1`},
		{"9223372036854775808", 0, `invalid value "9223372036854775808" for key "weir.expression.cost-limit": want an integer`},
		{"1e6", 0, `invalid value "1e6" for key "weir.expression.cost-limit": want an integer`},
		{"lots", 0, `invalid value "lots" for key "weir.expression.cost-limit": want an integer`},
	} {
		c, _, err := FromMap(map[string]string{"weir.expression.cost-limit": tt.value})
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%q: err = %v\n want %s", tt.value, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.value, err)
		case tt.err == "" && c.Int(ExpressionCostLimit) != tt.want:
			t.Errorf("%q: got %d, want %d", tt.value, c.Int(ExpressionCostLimit), tt.want)
		}
	}
	cluster, _, err := FromMap(map[string]string{"weir.expression.cost-limit": "2000000"})
	if err != nil {
		t.Fatal(err)
	}
	job, _, err := cluster.With(map[string]string{"weir.expression.cost-limit": "300"})
	if err != nil {
		t.Fatal(err)
	}
	if cluster.Int(ExpressionCostLimit) != 2000000 || job.Int(ExpressionCostLimit) != 300 {
		t.Fatalf("cluster %d, job %d", cluster.Int(ExpressionCostLimit), job.Int(ExpressionCostLimit))
	}
}
