package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is a validated set of configuration values. It is immutable once
// built and safe for concurrent reads. A nil *Config reads as New(): every
// option at its default.
type Config struct {
	raw    map[string]string // canonical (or unknown) key -> value as set; never ""
	parsed map[string]any    // canonical key -> typed value, for every set declared option
}

// New returns a Config with every option at its default.
func New() *Config {
	return &Config{raw: map[string]string{}, parsed: map[string]any{}}
}

// Load builds the configuration of a daemon: the YAML file at path (none if
// path is ""; see ConfigFile for which path), then the -D overrides, each
// "key=value", on top. A file named flink-conf.yaml is read in Flink 1.x's
// flat form (ParseFlinkConf), any other as YAML. It returns warnings
// (unknown, deprecated and not applicable keys) for the caller to log, and an
// error naming the key and value if any value is invalid.
func Load(path string, overrides []string) (*Config, []string, error) {
	var (
		ls       []layer
		warnings []string
	)
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("read config file: %w", err)
		}
		origin := fmt.Sprintf("config file %q", path)
		var m map[string]string
		if filepath.Base(path) == LegacyFlinkConfFile {
			var warns []string
			m, warns, err = ParseFlinkConf(data)
			for _, w := range warns {
				warnings = append(warnings, origin+": "+w)
			}
		} else {
			m, err = ParseYAML(data)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", origin, err)
		}
		ls = append(ls, layer{m, origin})
	}
	d, err := ParseOverrides(overrides)
	if err != nil {
		return nil, nil, err
	}
	ls = append(ls, layer{d, "-D"})
	c, warns, err := build(New(), ls...)
	return c, append(warnings, warns...), err
}

// ParseOverrides turns -D arguments ("key=value") into a flat map; keys and
// values are trimmed, and a later argument for the same key wins.
func ParseOverrides(overrides []string) (map[string]string, error) {
	d := make(map[string]string, len(overrides))
	for _, kv := range overrides {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid -D override %q: want key=value", kv)
		}
		d[k] = strings.TrimSpace(v)
	}
	return d, nil
}

// FromMap builds a Config from flat dotted keys, such as the map the
// JobManager sends to TaskManagers (see ToMap).
func FromMap(m map[string]string) (*Config, []string, error) {
	return build(New(), layer{m, ""})
}

// With returns c with overrides (flat dotted keys, e.g. a job's config:
// section flattened by FlattenMap) applied on top, validated. c is unchanged.
func (c *Config) With(overrides map[string]string) (*Config, []string, error) {
	if c == nil {
		c = New()
	}
	return build(c, layer{overrides, ""})
}

// WithJob is With for a job's config: section: it also refuses cluster
// options (Option.Scope), naming the key as written, where it belongs and
// never its value, since they are the daemons' own (credentials among them):
//
//	taskmanager.numberOfTaskSlots is a cluster setting (set it in the TaskManager's config.yaml), not a job setting
func (c *Config) WithJob(overrides map[string]string) (*Config, []string, error) {
	var errs []error
	for _, k := range sortedKeys(overrides) {
		if o, ok := Lookup(k); ok && o.Cluster() {
			errs = append(errs, fmt.Errorf("%s is a cluster setting (set it in %s), not a job setting", k, o.where()))
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return c.With(overrides)
}

// layer is one source of values: a file, the -D flags, a job's config.
type layer struct {
	values map[string]string
	origin string // for messages; "" when the caller adds its own context
}

// written records where the current value of a canonical key came from, so
// that an error names the key as the user wrote it.
type written struct{ key, origin string }

func build(base *Config, layers ...layer) (*Config, []string, error) {
	raw := maps.Clone(base.raw)
	src := make(map[string]written)
	var warnings []string
	for _, l := range layers {
		res, from, warns := resolve(l)
		warnings = append(warnings, warns...)
		for k, v := range res {
			if strings.TrimSpace(v) == "" {
				delete(raw, k) // an empty value resets the key to its default
				delete(src, k)
				continue
			}
			raw[k] = v
			src[k] = from[k]
		}
	}
	parsed := make(map[string]any, len(raw))
	var errs []error
	for _, k := range sortedKeys(raw) {
		o, ok := byKey[k]
		if !ok {
			continue
		}
		v, err := o.parse(raw[k])
		if err != nil {
			var ve *ValueError
			if w, ok := src[k]; ok && errors.As(err, &ve) {
				ve.Key = w.key
				if w.origin != "" {
					err = fmt.Errorf("%s: %w", w.origin, ve)
				}
			}
			errs = append(errs, err)
			continue
		}
		parsed[k] = v
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	return &Config{raw: raw, parsed: parsed}, warnings, nil
}

// resolve maps the keys of one layer to canonical keys. Within a layer the
// canonical key wins over an older name, so a file that sets both behaves as
// in Flink; across layers the later layer wins whichever name it uses.
func resolve(l layer) (res map[string]string, from map[string]written, warnings []string) {
	res = make(map[string]string, len(l.values))
	from = make(map[string]written, len(l.values))
	prefix := ""
	if l.origin != "" {
		prefix = l.origin + ": "
	}
	var notApplicable []string
	defer func() {
		if w := notApplicableWarning(prefix, notApplicable); w != "" {
			warnings = append(warnings, w)
		}
	}()
	for _, k := range sortedKeys(l.values) {
		v := l.values[k]
		if _, ok := byKey[k]; ok {
			res[k], from[k] = v, written{k, l.origin}
			continue
		}
		if o, ok := byFallback[k]; ok {
			if _, set := l.values[o.Key]; set {
				warnings = append(warnings, fmt.Sprintf("%sconfiguration key %q is deprecated and ignored because %q is set", prefix, k, o.Key))
				continue
			}
			warnings = append(warnings, fmt.Sprintf("%sconfiguration key %q is deprecated, use %q", prefix, k, o.Key))
			res[o.Key], from[o.Key] = v, written{k, l.origin}
			continue
		}
		res[k], from[k] = v, written{k, l.origin}
		if _, na := NotApplicable(k); na {
			notApplicable = append(notApplicable, k)
			continue
		}
		w := fmt.Sprintf("%sunknown configuration key %q", prefix, k)
		if s := suggest(k); s != "" {
			w += fmt.Sprintf(" (did you mean %q?)", s)
		}
		warnings = append(warnings, w)
	}
	return res, from, warnings
}

// suggest returns the declared key closest to an unknown one, if it is
// close enough to be a likely typo. Plain Levenshtein over a hundred keys of
// under 80 bytes, with an early cut-off, is a few microseconds per unknown
// key and twenty lines: a fuzzy-matching library would bring more code than
// it saves.
func suggest(k string) string {
	best, bestD := "", 3 // at most 2 edits, or a case difference
	for _, o := range sorted {
		cands := append([]string{o.Key}, o.FallbackKeys...)
		for _, c := range cands {
			if strings.EqualFold(c, k) {
				return o.Key
			}
			if d := editDistance(strings.ToLower(c), strings.ToLower(k), bestD); d < bestD {
				best, bestD = o.Key, d
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit if it is at
// least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ToMap returns the explicitly set keys (canonical names; unknown keys as
// written) and their values as set, except secrets (Option.Secret), which
// never leave the process: FromMap(c.ToMap()) equals c without them. It is
// what the JobManager sends to TaskManagers.
func (c *Config) ToMap() map[string]string {
	if c == nil {
		return map[string]string{}
	}
	m := maps.Clone(c.raw)
	for k := range m {
		if o, ok := byKey[k]; ok && o.Secret {
			delete(m, k)
		}
	}
	return m
}

// RedactedValue stands for the value of a secret wherever configuration is
// shown.
const RedactedValue = "******"

// Redacted returns the explicitly set keys and their values as set, with
// the value of every secret replaced by RedactedValue: the form in which a
// configuration may be logged or shown.
func (c *Config) Redacted() map[string]string {
	if c == nil {
		return map[string]string{}
	}
	m := maps.Clone(c.raw)
	for k := range m {
		if o, ok := byKey[k]; ok && o.Secret {
			m[k] = RedactedValue
		}
	}
	return m
}

// Get returns the value set for key (a canonical, older or unknown key) as
// written, and whether it is set. Typed access to declared options goes
// through the getters; Get is for keys weir does not declare.
func (c *Config) Get(key string) (string, bool) {
	if c == nil {
		return "", false
	}
	if o, ok := byFallback[key]; ok {
		key = o.Key
	}
	v, ok := c.raw[key]
	return v, ok
}

// IsSet reports whether o was set explicitly rather than left at its default.
func (c *Config) IsSet(o *Option) bool {
	checkDeclared(o)
	if c == nil {
		return false
	}
	_, ok := c.raw[o.Key]
	return ok
}

func checkDeclared(o *Option) {
	if o == nil {
		panic("config: nil option")
	}
	if byKey[o.Key] != o {
		panic(fmt.Sprintf("config: option %q is not declared in package config", o.Key))
	}
}

// value returns the typed value of o, panicking if o is not of type t.
func (c *Config) value(o *Option, t Type, getter string) any {
	checkDeclared(o)
	if o.Type != t {
		panic(fmt.Sprintf("config: %s called on option %q of type %v", getter, o.Key, o.Type))
	}
	if c != nil {
		if v, ok := c.parsed[o.Key]; ok {
			return v
		}
	}
	return defaults[o.Key] // nil when the option has no default
}

// String returns the value of any option as text: for an enum the declared
// spelling of the value (so "exactly_once" reads as "EXACTLY_ONCE"), for
// other types the value as written, or the default. An unset option without
// default gives "".
func (c *Config) String(o *Option) string {
	checkDeclared(o)
	if o.Type == TypeEnum {
		v, _ := c.value(o, TypeEnum, "String").(string)
		return v
	}
	if c != nil {
		if v, ok := c.raw[o.Key]; ok {
			return v
		}
	}
	return o.Default
}

// Int returns the value of a TypeInt option.
func (c *Config) Int(o *Option) int {
	v, _ := c.value(o, TypeInt, "Int").(int)
	return v
}

// Float returns the value of a TypeFloat option.
func (c *Config) Float(o *Option) float64 {
	v, _ := c.value(o, TypeFloat, "Float").(float64)
	return v
}

// Bool returns the value of a TypeBool option.
func (c *Config) Bool(o *Option) bool {
	v, _ := c.value(o, TypeBool, "Bool").(bool)
	return v
}

// Duration returns the value of a TypeDuration option; 0 when it is unset and
// has no default (check IsSet where unset means disabled).
func (c *Config) Duration(o *Option) time.Duration {
	v, _ := c.value(o, TypeDuration, "Duration").(time.Duration)
	return v
}

// MemorySize returns the value of a TypeMemorySize option, in bytes.
func (c *Config) MemorySize(o *Option) int64 {
	v, _ := c.value(o, TypeMemorySize, "MemorySize").(int64)
	return v
}

// PortRange returns the inclusive port range of a TypePortRange option; a
// single port gives lo == hi, and (0, 0) means any free port.
func (c *Config) PortRange(o *Option) (lo, hi int) {
	v, _ := c.value(o, TypePortRange, "PortRange").(portRange)
	return v.lo, v.hi
}
