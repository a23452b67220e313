package jobgraph

import (
	"errors"

	"github.com/weirstream/weir/pkg/operator"
)

// Test-only operator types, so that these tests do not depend on the
// built-in operators and their properties.
func init() {
	operator.Register(&operator.Type{
		Name:       "test-source",
		Kind:       operator.KindSource,
		Properties: []operator.PropertySpec{{Name: "count"}, {Name: "interval"}},
		Validate: func(p operator.Properties) error {
			if _, err := p.Int("count", 0); err != nil {
				return err
			}
			_, err := p.Duration("interval", 0)
			return err
		},
	})
	operator.Register(&operator.Type{
		Name:       "test-map",
		Kind:       operator.KindTransform,
		Properties: []operator.PropertySpec{{Name: "expr", Required: true}, {Name: "options"}},
		Validate: func(p operator.Properties) error {
			expr, err := p.RequiredString("expr")
			if err != nil {
				return err
			}
			if expr == "bad" {
				return errors.New(`property "expr": does not compile`)
			}
			return nil
		},
	})
	operator.Register(&operator.Type{
		Name: "test-keyed",
		Kind: operator.KindTransform,
		// Keyed, like aggregate.
		Keyed: true,
	})
	operator.Register(&operator.Type{
		Name:       "test-sink",
		Kind:       operator.KindSink,
		Properties: []operator.PropertySpec{{Name: "path"}},
	})
	operator.Register(&operator.Type{
		Name: "test-panic",
		Kind: operator.KindSink,
		Validate: func(p operator.Properties) error {
			var m map[string]int
			m["boom"] = 1 // a buggy type must not crash the JobManager
			return nil
		},
	})
}
