package config

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Type is the kind of value an option holds; it decides the value syntax
// accepted and which getter reads it.
type Type int

const (
	// TypeString is free text; read with String.
	TypeString Type = iota + 1
	// TypeInt is a decimal integer; read with Int.
	TypeInt
	// TypeFloat is a decimal number; read with Float.
	TypeFloat
	// TypeBool is true or false, case-insensitive; read with Bool.
	TypeBool
	// TypeDuration is a duration (see ParseDuration); read with Duration.
	TypeDuration
	// TypeMemorySize is a number of bytes (see ParseMemorySize); read with MemorySize.
	TypeMemorySize
	// TypePortRange is a port, a range lo-hi, or 0 for any free port; read with PortRange.
	TypePortRange
	// TypeEnum is one of Option.Values, matched case-insensitively; read
	// with String, which returns the declared spelling.
	TypeEnum
)

// String returns the name used in docs/configuration.md.
func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeInt:
		return "int"
	case TypeFloat:
		return "float"
	case TypeBool:
		return "bool"
	case TypeDuration:
		return "duration"
	case TypeMemorySize:
		return "memory size"
	case TypePortRange:
		return "port range"
	case TypeEnum:
		return "enum"
	default:
		return fmt.Sprintf("Type(%d)", int(t))
	}
}

// Option declares one configuration key. Options are declared once, in
// options.go, and never modified afterwards.
type Option struct {
	// Key is the canonical, dotted key (Flink's current name).
	Key  string
	Type Type
	// Default is the value, in the option's own syntax, used when the key is
	// not set. "" means no default: IsSet tells whether the user set it and
	// the typed getters return the zero value.
	Default     string
	Description string
	// FallbackKeys are older (deprecated) names still accepted for Key.
	FallbackKeys []string
	// Values lists the allowed values of a TypeEnum option, in their
	// canonical spelling.
	Values []string
	// Min and Max bound TypeInt and TypeFloat values, and TypeDuration
	// (in nanoseconds) and TypeMemorySize (in bytes) values; nil = unbounded.
	Min, Max *float64
	// AbsolutePathOrURI: a TypeString value names a directory that the
	// JobManager and every TaskManager resolve each on its own, so it must
	// be an absolute path or a URI (IsAbsolutePathOrURI).
	AbsolutePathOrURI bool
	// AbsoluteDirList: a TypeString value is a comma-separated list of
	// absolute directories (io.allowed-paths), each entry non-empty.
	AbsoluteDirList bool
	// Scope says where the option may be set: ScopeCluster options are
	// read by a daemon from its own configuration (file and -D flags),
	// never from a job, so WithJob refuses a job's config: that sets one;
	// ScopeBoth options are cluster-wide defaults that a job's config: may
	// override. Every option declares one (init checks).
	Scope Scope
	// Daemon names the daemon that reads a ScopeCluster option, for the
	// error that tells a job where the key belongs: DaemonJobManager,
	// DaemonTaskManager, or "" for both.
	Daemon string
	// Secret options hold credentials: their value never leaves the
	// process (ToMap omits them), is never printed (Redacted, errors),
	// and so never reaches a log line or a deployment descriptor.
	Secret bool
}

func bound(f float64) *float64 { return &f }

// Scope is where an option may be set.
type Scope int

const (
	// ScopeCluster options belong to the daemons' configuration
	// (config.yaml, -D); a job's config: may not set them.
	ScopeCluster Scope = iota + 1
	// ScopeJob options mean something only for a job, in its config:.
	ScopeJob
	// ScopeBoth options are set for the cluster as a default that a job's
	// config: may override.
	ScopeBoth
)

// String returns the name used in docs/configuration.md.
func (s Scope) String() string {
	switch s {
	case ScopeCluster:
		return "cluster"
	case ScopeJob:
		return "job"
	case ScopeBoth:
		return "cluster, job"
	default:
		return fmt.Sprintf("Scope(%d)", int(s))
	}
}

// The daemons named by Option.Daemon.
const (
	DaemonJobManager  = "JobManager"
	DaemonTaskManager = "TaskManager"
)

// Cluster reports whether o is a cluster option, refused in a job's config:.
func (o *Option) Cluster() bool { return o.Scope == ScopeCluster }

// where says in which configuration file a cluster option belongs.
func (o *Option) where() string {
	if o.Daemon == "" {
		return "the config.yaml of the JobManager and the TaskManagers"
	}
	return "the " + o.Daemon + "'s config.yaml"
}

// want describes what a valid value looks like, for error messages about a
// value that does not parse.
func (o *Option) want() string {
	switch o.Type {
	case TypeString:
		return "a string"
	case TypeInt:
		return "an integer"
	case TypeFloat:
		return "a number"
	case TypeBool:
		return "true or false"
	case TypeDuration:
		return "a duration like 500ms, 10 s or 2 min"
	case TypeMemorySize:
		return "a memory size like 32kb, 64 mb or 1 gb"
	case TypePortRange:
		return "a port, a port range like 9249-9260, or 0 for any free port"
	case TypeEnum:
		return "one of " + strings.Join(o.Values, ", ")
	}
	return o.Type.String()
}

// wantInRange describes the allowed range, for error messages about a value
// that parses but is out of range: "an integer >= 1".
func (o *Option) wantInRange() string {
	noun := map[Type]string{TypeInt: "an integer", TypeFloat: "a number", TypeDuration: "a duration", TypeMemorySize: "a memory size"}[o.Type]
	return noun + " " + o.rangeText()
}

// rangeText renders Min/Max in the option's own syntax: ">= 1", "between 0 and 1".
func (o *Option) rangeText() string {
	f := func(v float64) string {
		switch o.Type {
		case TypeDuration:
			return time.Duration(v).String()
		case TypeMemorySize:
			return strconv.FormatFloat(v, 'f', -1, 64) + " bytes"
		default:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	switch {
	case o.Min != nil && o.Max != nil:
		return "between " + f(*o.Min) + " and " + f(*o.Max)
	case o.Min != nil && *o.Min == 1 && (o.Type == TypeDuration || o.Type == TypeMemorySize):
		return "greater than 0"
	case o.Min != nil:
		return ">= " + f(*o.Min)
	case o.Max != nil:
		return "<= " + f(*o.Max)
	}
	return ""
}

// portRange is the parsed value of a TypePortRange option.
type portRange struct{ lo, hi int }

// parse converts a raw value into the option's typed value: string (String
// and Enum, the latter canonicalised), int, float64, bool, time.Duration,
// int64 (memory size) or portRange.
func (o *Option) parse(raw string) (any, error) {
	s := strings.TrimSpace(raw)
	var (
		v   any
		num float64 // for the Min/Max check
		err error
	)
	switch o.Type {
	case TypeString:
		if o.AbsolutePathOrURI && !IsAbsolutePathOrURI(raw) {
			return nil, &ValueError{Key: o.Key, Value: raw, Want: wantAbsolute}
		}
		if o.AbsoluteDirList {
			if want := badDirList(raw); want != "" {
				return nil, &ValueError{Key: o.Key, Value: raw, Want: want}
			}
		}
		return raw, nil
	case TypeEnum:
		for _, e := range o.Values {
			if strings.EqualFold(s, e) {
				return e, nil
			}
		}
		err = errInvalid
	case TypeInt:
		var n int
		n, err = strconv.Atoi(s)
		v, num = n, float64(n)
	case TypeFloat:
		var f float64
		f, err = strconv.ParseFloat(s, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			err = errInvalid
		}
		v, num = f, f
	case TypeBool:
		switch {
		case strings.EqualFold(s, "true"):
			v = true
		case strings.EqualFold(s, "false"):
			v = false
		default:
			err = errInvalid
		}
	case TypeDuration:
		var d time.Duration
		d, err = ParseDuration(s)
		v, num = d, float64(d)
	case TypeMemorySize:
		var n int64
		n, err = ParseMemorySize(s)
		v, num = n, float64(n)
	case TypePortRange:
		var lo, hi int
		lo, hi, err = ParsePortRange(s)
		v = portRange{lo, hi}
	default:
		return nil, fmt.Errorf("config: option %q has unknown type %v", o.Key, o.Type)
	}
	if o.Secret {
		raw = RedactedValue
	}
	if err == nil && ((o.Min != nil && num < *o.Min) || (o.Max != nil && num > *o.Max)) {
		return nil, &ValueError{Key: o.Key, Value: raw, Want: o.wantInRange()}
	}
	if err != nil {
		return nil, &ValueError{Key: o.Key, Value: raw, Want: o.want()}
	}
	return v, nil
}

// ValueError reports a value that does not fit its option.
type ValueError struct {
	Key   string // the key as the user wrote it (possibly an older name)
	Value string
	Want  string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("invalid value %q for key %q: want %s", e.Value, e.Key, e.Want)
}

var errInvalid = errors.New("invalid")

// registry maps canonical and fallback keys to their option; built once from
// allOptions at package init and never modified.
var (
	byKey      map[string]*Option // canonical key -> option
	byFallback map[string]*Option // older key -> option
	defaults   map[string]any     // canonical key -> parsed default (absent if Default == "")
	sorted     []*Option
)

func init() {
	byKey = make(map[string]*Option, len(allOptions))
	byFallback = make(map[string]*Option)
	defaults = make(map[string]any, len(allOptions))
	for _, o := range allOptions {
		if _, dup := byKey[o.Key]; dup {
			panic(fmt.Sprintf("config: option %q declared twice", o.Key))
		}
		if o.Scope < ScopeCluster || o.Scope > ScopeBoth {
			panic(fmt.Sprintf("config: option %q declares no scope", o.Key))
		}
		if o.Daemon != "" && (o.Scope != ScopeCluster || (o.Daemon != DaemonJobManager && o.Daemon != DaemonTaskManager)) {
			panic(fmt.Sprintf("config: option %q: Daemon %q needs ScopeCluster and a daemon's name", o.Key, o.Daemon))
		}
		byKey[o.Key] = o
		if o.Default != "" {
			v, err := o.parse(o.Default)
			if err != nil {
				panic(fmt.Sprintf("config: default of option %q: %v", o.Key, err))
			}
			defaults[o.Key] = v
		}
	}
	for _, o := range allOptions {
		for _, fk := range o.FallbackKeys {
			if _, dup := byKey[fk]; dup {
				panic(fmt.Sprintf("config: fallback key %q of %q is also a canonical key", fk, o.Key))
			}
			if _, dup := byFallback[fk]; dup {
				panic(fmt.Sprintf("config: fallback key %q declared twice", fk))
			}
			byFallback[fk] = o
		}
	}
	sorted = append([]*Option(nil), allOptions...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
}

// Options returns every declared option, sorted by key. The slice is a copy;
// the options themselves must not be modified.
func Options() []*Option {
	return append([]*Option(nil), sorted...)
}

// Lookup returns the option declared for key, which may be a canonical key
// or an older (fallback) name.
func Lookup(key string) (*Option, bool) {
	if o, ok := byKey[key]; ok {
		return o, true
	}
	o, ok := byFallback[key]
	return o, ok
}
