package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseYAML flattens a YAML configuration document into dotted keys. Keys may
// be flat (taskmanager.numberOfTaskSlots: 2), nested
// (taskmanager: {numberOfTaskSlots: 2}) or mixed; all forms give
// "taskmanager.numberOfTaskSlots" -> "2". Scalar values are kept exactly as
// written (so 010 stays "010" and 1.0 stays "1.0"); a null value becomes "",
// which resets the key to its default. A key reached twice (flat and nested)
// is an error, as are lists and maps as values. An empty document gives an
// empty map.
func ParseYAML(data []byte) (map[string]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return map[string]string{}, nil
	}
	return FlattenNode(&doc)
}

// FlattenNode flattens a YAML mapping node (or a document node holding one)
// into dotted keys, as ParseYAML does. It serves a job file's config: section
// decoded as a yaml.Node.
func FlattenNode(n *yaml.Node) (map[string]string, error) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return map[string]string{}, nil
		}
		n = n.Content[0]
	}
	n = resolveAlias(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return map[string]string{}, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: configuration must be a mapping of keys to values", n.Line)
	}
	out := map[string]string{}
	b := budget{keys: maxKeys, listBytes: maxListBytes}
	if err := flattenNode(n, "", out, &b); err != nil {
		return nil, err
	}
	return out, nil
}

// maxKeys bounds the keys a configuration document flattens to. weir has a few dozen options; the bound is there
// because YAML aliases make a small document expand exponentially (a mapping of ten aliases to a mapping of ten
// aliases to ..., the "billion laughs"): a 600-byte document would otherwise flatten to millions of keys and take
// the JobManager's memory with it.
const maxKeys = 10_000

// maxKeyLen bounds a flattened key, for the same reason: aliases nest a long key inside itself as often as the
// document repeats it, and keys are kept and sent to every TaskManager. Flink's longest key has under 80 bytes.
const maxKeyLen = 1024

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// budget is what is left of a document's bounds while it is flattened.
type budget struct{ keys, listBytes int }

// maxListBytes bounds the bytes of the lists a document's not-applicable keys
// join into strings (naList). Unlike a scalar, which an alias shares, a
// joined list is a copy, and a list of aliases to a long scalar would
// otherwise grow quadratically with the document.
const maxListBytes = 1 << 20

func flattenNode(m *yaml.Node, prefix string, out map[string]string, b *budget) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := resolveAlias(m.Content[i]), resolveAlias(m.Content[i+1])
		if b.keys--; b.keys < 0 {
			return fmt.Errorf("line %d: configuration has more than %d keys (do YAML aliases repeat a mapping?)", kn.Line, maxKeys)
		}
		if kn.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: configuration keys must be strings", kn.Line)
		}
		if kn.Tag == "!!merge" {
			return fmt.Errorf("line %d: YAML merge keys (<<) are not supported in configuration", kn.Line)
		}
		key := joinKey(prefix, kn.Value)
		if len(key) > maxKeyLen {
			return fmt.Errorf("line %d: key %q... is longer than %d bytes", kn.Line, key[:64], maxKeyLen)
		}
		switch vn.Kind {
		case yaml.MappingNode:
			if err := flattenNode(vn, key, out, b); err != nil {
				return err
			}
		case yaml.ScalarNode:
			v := vn.Value
			if vn.Tag == "!!null" {
				v = ""
			}
			if err := put(out, key, v); err != nil {
				return fmt.Errorf("line %d: %w", kn.Line, err)
			}
		default:
			elems, size, ok := naList(key, vn)
			if !ok {
				return fmt.Errorf("line %d: key %q: lists are not supported as configuration values", kn.Line, key)
			}
			if b.listBytes -= size; b.listBytes < 0 {
				return fmt.Errorf("line %d: key %q: the configuration's lists join to more than %d bytes (do YAML aliases repeat a value?)", kn.Line, key, maxListBytes)
			}
			if err := put(out, key, strings.Join(elems, ";")); err != nil {
				return fmt.Errorf("line %d: %w", kn.Line, err)
			}
		}
	}
	return nil
}

// FlattenMap flattens a decoded YAML or JSON map (for example a job file's
// config: section decoded into map[string]any) into dotted keys. Scalars are
// formatted in the shortest form that parses back to the same value.
func FlattenMap(m map[string]any) (map[string]string, error) {
	out := map[string]string{}
	if err := flattenMap(m, "", out); err != nil {
		return nil, err
	}
	return out, nil
}

func flattenMap(m map[string]any, prefix string, out map[string]string) error {
	// Sorted so that the reported error is the same on every run.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := joinKey(prefix, k)
		var s string
		switch v := m[k].(type) {
		case map[string]any:
			if err := flattenMap(v, key, out); err != nil {
				return err
			}
			continue
		case map[any]any:
			sub := make(map[string]any, len(v))
			for kk, vv := range v {
				ks, ok := kk.(string)
				if !ok {
					return fmt.Errorf("key %q: configuration keys must be strings, got %T", key, kk)
				}
				sub[ks] = vv
			}
			if err := flattenMap(sub, key, out); err != nil {
				return err
			}
			continue
		case nil:
			s = ""
		case string:
			s = v
		case bool:
			s = strconv.FormatBool(v)
		case int:
			s = strconv.Itoa(v)
		case int64:
			s = strconv.FormatInt(v, 10)
		case uint64:
			s = strconv.FormatUint(v, 10)
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case []any:
			return fmt.Errorf("key %q: lists are not supported as configuration values", key)
		default:
			return fmt.Errorf("key %q: unsupported value of type %T", key, v)
		}
		if err := put(out, key, s); err != nil {
			return err
		}
	}
	return nil
}

// naList returns the elements of a list of scalars that is the value of one
// of Flink's keys that do not apply to weir (NotApplicable), and their bytes
// joined with ";" (Flink's flat form of a list), so that a Flink config.yaml
// with, say, pipeline.jars: [a.jar, b.jar] loads. weir's own options take no
// lists.
func naList(key string, n *yaml.Node) (elems []string, size int, ok bool) {
	if _, na := NotApplicable(key); !na || n.Kind != yaml.SequenceNode {
		return nil, 0, false
	}
	elems = make([]string, 0, len(n.Content))
	for _, e := range n.Content {
		e = resolveAlias(e)
		if e.Kind != yaml.ScalarNode {
			return nil, 0, false
		}
		elems = append(elems, e.Value) // shares the scalar's bytes: no copy yet
		size += len(e.Value) + 1
	}
	return elems, size, true
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func put(out map[string]string, key, v string) error {
	if _, dup := out[key]; dup {
		return fmt.Errorf("key %q is set twice", key)
	}
	out[key] = v
	return nil
}
