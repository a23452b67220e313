package operator

import (
	"fmt"
	"sort"
	"sync"
)

// Kind says where an operator type may stand in a dataflow.
type Kind int

const (
	// KindSource has no inputs.
	KindSource Kind = iota
	// KindTransform has inputs and outputs.
	KindTransform
	// KindSink has inputs and no consumers.
	KindSink
)

func (k Kind) String() string {
	switch k {
	case KindSource:
		return "source"
	case KindTransform:
		return "transform"
	case KindSink:
		return "sink"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Type is a registered operator type.
type Type struct {
	Name string
	Kind Kind
	// Keyed types need every input hash-partitioned (aggregate).
	Keyed bool
	// Properties lists every property the type knows, for "unknown
	// property" errors and documentation.
	Properties []PropertySpec
	// Validate checks properties at submission (compiling expressions);
	// errors name the property. Unknown properties are rejected by the
	// caller using Properties, before Validate.
	Validate func(p Properties) error
	// NewSource builds a source instance (KindSource).
	NewSource func(p Properties) (Source, error)
	// NewOperator builds a transform or sink instance.
	NewOperator func(p Properties) (Operator, error)
}

// PropertySpec documents one property of a type.
type PropertySpec struct {
	Name        string
	Required    bool
	Description string
	// Path: the value is a file or directory on the TaskManager, confined
	// to io.allowed-paths (the JobManager checks it at submission).
	Path bool
}

var (
	mu    sync.RWMutex
	types = map[string]*Type{}
)

// Register makes an operator type available by name. It panics on a
// duplicate name: registration happens in init functions.
func Register(t *Type) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := types[t.Name]; dup {
		panic("operator: type registered twice: " + t.Name)
	}
	types[t.Name] = t
}

// Lookup returns the type registered under name.
func Lookup(name string) (*Type, bool) {
	mu.RLock()
	defer mu.RUnlock()
	t, ok := types[name]
	return t, ok
}

// Types returns every registered type, sorted by name.
func Types() []*Type {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]*Type, 0, len(types))
	for _, t := range types {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the registered type names, sorted.
func Names() []string {
	ts := Types()
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
