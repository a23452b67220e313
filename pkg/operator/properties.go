package operator

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/pkg/config"
)

// Properties are an operator's `properties:` from the job file. Values are
// as decoded from YAML or JSON: int, int64, uint64, float64, json.Number,
// string, bool, nil, []any and map[string]any. The accessors below convert
// them and return errors that name the property, so a type's Validate and
// its constructor can return them unchanged.
//
// A job is validated at submission on the values decoded from YAML and
// built on the TaskManagers from the JSON of its deployment descriptor,
// decoded with json.Number (jobgraph.DecodeOperator): an integer written as
// such is never rounded through float64 on the way, so every accessor
// returns at deployment exactly what it returned at submission.
//
// An absent property and one set to null (`path:` with no value) are the
// same: the accessor returns its default.
type Properties map[string]any

// String returns the string property name, or def when it is absent.
func (p Properties) String(name, def string) (string, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", wantError(name, "a string", v)
	}
	return s, nil
}

// RequiredString returns the string property name; it is an error when the
// property is absent or empty.
func (p Properties) RequiredString(name string) (string, error) {
	v, ok := p.get(name)
	if !ok {
		return "", fmt.Errorf("property %q is required", name)
	}
	s, isString := v.(string)
	if !isString {
		return "", wantError(name, "a string", v)
	}
	if s == "" {
		return "", fmt.Errorf("property %q is required", name)
	}
	return s, nil
}

// Int returns the integer property name, or def when it is absent. A float
// without fraction is accepted (YAML reads 1e6 as a float); 1.5 and strings
// are not.
func (p Properties) Int(name string, def int64) (int64, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	n, isInt := toInt64(v)
	if !isInt {
		return 0, wantError(name, "an integer", v)
	}
	return n, nil
}

// IntIn is Int for a property whose documented range is lo to hi
// (inclusive); def is returned unchecked when the property is absent.
func (p Properties) IntIn(name string, def, lo, hi int64) (int64, error) {
	n, err := p.Int(name, def)
	if err != nil {
		return 0, err
	}
	if _, ok := p.get(name); ok && (n < lo || n > hi) {
		return 0, fmt.Errorf("property %q: want an integer between %d and %d, got %d", name, lo, hi, n)
	}
	return n, nil
}

// Float returns the numeric property name, or def when it is absent.
func (p Properties) Float(name string, def float64) (float64, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	f, isNum := toFloat64(v)
	if !isNum || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, wantError(name, "a number", v)
	}
	return f, nil
}

// Bool returns the boolean property name, or def when it is absent.
func (p Properties) Bool(name string, def bool) (bool, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, wantError(name, "true or false", v)
	}
	return b, nil
}

// Duration returns the duration property name, or def when it is absent.
// It is written as a string in Flink's or Go's form (500ms, 10 s, 2 min,
// 1m30s; see config.ParseDuration) or as an integer number of milliseconds,
// as in Flink. Negative durations are rejected.
func (p Properties) Duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	const want = "a duration like 500ms, 10 s or 2 min"
	if s, isString := v.(string); isString {
		d, err := config.ParseDuration(s)
		if err != nil {
			return 0, wantError(name, want, v)
		}
		return d, nil
	}
	n, isInt := toInt64(v)
	if !isInt || n < 0 || n > math.MaxInt64/int64(time.Millisecond) {
		return 0, wantError(name, want, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// DurationIn is Duration for a property whose documented range is lo to
// hi (inclusive); def is returned unchecked when the property is absent.
func (p Properties) DurationIn(name string, def, lo, hi time.Duration) (time.Duration, error) {
	d, err := p.Duration(name, def)
	if err != nil {
		return 0, err
	}
	if _, ok := p.get(name); ok && (d < lo || d > hi) {
		return 0, fmt.Errorf("property %q: want a duration between %s and %s, got %s", name, formatDuration(lo), formatDuration(hi), describe(p[name]))
	}
	return d, nil
}

// formatDuration renders d as Go does, without its zero minutes and
// seconds: 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	s, _ = strings.CutSuffix(s, "m0s")
	if t, ok := strings.CutSuffix(s, "h0"); ok {
		return t + "h"
	}
	if s != d.String() {
		s += "m"
	}
	return s
}

// MemorySizeIn returns the memory size property name, or def when it is
// absent; its documented range is lo to hi bytes (inclusive). It is
// written as Flink writes memory sizes (64kb, 1 mb, 2 MiB; units are
// binary, see config.ParseMemorySize) or as an integer number of bytes.
func (p Properties) MemorySizeIn(name string, def, lo, hi int64) (int64, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	const want = "a memory size like 64kb or 1 mb, or a number of bytes"
	var n int64
	if s, isString := v.(string); isString {
		var err error
		if n, err = config.ParseMemorySize(s); err != nil {
			return 0, wantError(name, want, v)
		}
	} else {
		var isInt bool
		if n, isInt = toInt64(v); !isInt {
			return 0, wantError(name, want, v)
		}
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("property %q: want a memory size between %s and %s, got %s", name, formatBytes(lo), formatBytes(hi), describe(v))
	}
	return n, nil
}

// formatBytes renders a size in the largest binary unit that divides it:
// 1 mb, 64 kb, 100 bytes.
func formatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "gb"}, {1 << 20, "mb"}, {1 << 10, "kb"}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Map returns the map property name and whether it is present.
func (p Properties) Map(name string) (map[string]any, bool, error) {
	v, ok := p.get(name)
	if !ok {
		return nil, false, nil
	}
	switch m := v.(type) {
	case map[string]any:
		return m, true, nil
	case Properties:
		return m, true, nil
	case map[any]any:
		// yaml decodes a map with a non-string key this way.
		out := make(map[string]any, len(m))
		for k, e := range m {
			ks, isString := k.(string)
			if !isString {
				return nil, true, fmt.Errorf("property %q: map keys must be strings, got %s", name, describe(k))
			}
			out[ks] = e
		}
		return out, true, nil
	}
	return nil, true, wantError(name, "a map", v)
}

// Unknown returns the names of the properties that are not in known,
// sorted.
func (p Properties) Unknown(known []PropertySpec) []string {
	var out []string
	for name := range p {
		found := false
		for _, s := range known {
			if s.Name == name {
				found = true
				break
			}
		}
		if !found {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// get returns the value of name, treating null like absence.
func (p Properties) get(name string) (any, bool) {
	v, ok := p[name]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

func wantError(name, want string, got any) error {
	return fmt.Errorf("property %q: want %s, got %s", name, want, describe(got))
}

// describe renders a decoded value for an error message: strings quoted,
// numbers and booleans as written, collections by their kind.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case []any:
		return "a list"
	case map[string]any, map[any]any, Properties:
		return "a map"
	}
	return fmt.Sprint(v)
}

// toInt64 converts any decoded integral number to int64.
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return uintToInt64(uint64(x))
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return uintToInt64(x)
	case float32:
		return floatToInt64(float64(x))
	case float64:
		return floatToInt64(x)
	case json.Number:
		return jsonNumberToInt64(x)
	}
	return 0, false
}

// jsonNumberToInt64 reads a JSON number as it was written: an integer
// literal exactly (out of int64 range is not an int64, even though its
// float64 rounding may be), any other number through float64, which is
// what the YAML decoder made of it at submission (the descriptor's JSON is
// encoded from those values, and Go writes floats so that they read back
// exactly).
func jsonNumberToInt64(x json.Number) (int64, bool) {
	s := string(x)
	if !strings.ContainsAny(s, ".eE") {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return floatToInt64(f)
}

func uintToInt64(u uint64) (int64, bool) {
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// floatToInt64 accepts only floats that are exactly an int64: 3.0, not 1.5,
// and not 2^63 (which float64 represents but int64 does not).
func floatToInt64(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// toFloat64 converts any decoded number to float64.
func toFloat64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	if n, ok := toInt64(v); ok {
		return float64(n), true
	}
	if u, ok := v.(uint64); ok {
		return float64(u), true
	}
	return 0, false
}
