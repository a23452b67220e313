package jobgraph

import (
	"fmt"
	"math"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Helpers that read yaml.Nodes. The job file is decoded node by node rather
// than into structs so that unknown fields are rejected with their line, and
// so that a value of the wrong type is reported as the user wrote it.

// resolve follows aliases (*anchor) to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describeNode renders a node for "want X, got Y" messages.
func describeNode(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an unexpected YAML node"
}

// field is one key/value pair of a mapping node.
type field struct {
	key   string
	line  int
	value *yaml.Node
}

// fields returns the pairs of a mapping node in file order. Keys must be
// plain scalars, each present once; merge keys (<<) are not supported
// because they would hide which fields were written.
func fields(m *yaml.Node) ([]field, error) {
	out := make([]field, 0, len(m.Content)/2)
	seen := make(map[string]int, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := resolve(m.Content[i])
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			return nil, fmt.Errorf("field names must be strings, got %s at line %d", describeNode(k), k.Line)
		}
		if k.ShortTag() == "!!merge" {
			return nil, fmt.Errorf("merge keys (<<) are not supported, at line %d", k.Line)
		}
		if first, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("field %q is set twice, at lines %d and %d", k.Value, first, k.Line)
		}
		seen[k.Value] = k.Line
		out = append(out, field{key: k.Value, line: k.Line, value: m.Content[i+1]})
	}
	return out, nil
}

// stringValue reads a scalar as the text written; numbers are accepted
// (an id or a name may well be written 1 or 2024).
func stringValue(name string, n *yaml.Node) (string, error) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", fmt.Errorf("%s: want a string, got %s at line %d", name, describeNode(n), n.Line)
	}
	return n.Value, nil
}

// intValue reads an integer scalar.
func intValue(name string, n *yaml.Node) (int, error) {
	n = resolve(n)
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v > math.MaxInt32 || v < math.MinInt32 {
		return 0, fmt.Errorf("%s: want an integer, got %s at line %d", name, describeNode(n), n.Line)
	}
	return int(v), nil
}

// Limits that keep a hostile job file (alias bombs, deep nesting) from
// exhausting the JobManager's memory while its properties are decoded.
const (
	maxPropertyNodes = 100_000
	maxPropertyDepth = 64
)

// propertyDecoder turns a properties node into the values operator
// types expect (see operator.Properties): nil, bool, int, uint64, float64,
// string, []any and map[string]any, all of which survive the JSON trip to
// the TaskManagers.
type propertyDecoder struct {
	nodes int
}

func (d *propertyDecoder) value(n *yaml.Node, depth int) (any, error) {
	d.nodes++
	if d.nodes > maxPropertyNodes {
		return nil, fmt.Errorf("more than %d values", maxPropertyNodes)
	}
	if depth > maxPropertyDepth {
		return nil, fmt.Errorf("nested more than %d levels deep at line %d", maxPropertyDepth, n.Line)
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		return d.scalar(n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := d.value(e, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		fs, err := fields(n)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(fs))
		for _, f := range fs {
			v, err := d.value(f.value, depth+1)
			if err != nil {
				return nil, err
			}
			out[f.key] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected YAML node at line %d", n.Line)
}

func (d *propertyDecoder) scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return b, nil
	case "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("integer %s out of range at line %d", n.Value, n.Line)
		}
		return v, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// JSON, which carries properties to TaskManagers, has no such numbers.
			return nil, fmt.Errorf("%s is not a finite number, at line %d", n.Value, n.Line)
		}
		return f, nil
	}
	// !!str, and !!timestamp and custom tags kept as the text written.
	return n.Value, nil
}
