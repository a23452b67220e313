package operator

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// errString renders an error for table comparisons ("" for nil).
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestPropertiesString(t *testing.T) {
	p := Properties{"path": "/tmp/x", "n": 12, "empty": "", "null": nil, "list": []any{"a"}}
	tests := []struct {
		name, def, want, err string
	}{
		{"path", "d", "/tmp/x", ""},
		{"missing", "d", "d", ""},
		{"null", "d", "d", ""},
		{"empty", "d", "", ""},
		{"n", "d", "", `property "n": want a string, got 12`},
		{"list", "d", "", `property "list": want a string, got a list`},
	}
	for _, tt := range tests {
		got, err := p.String(tt.name, tt.def)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("String(%q) = %q, %q; want %q, %q", tt.name, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesRequiredString(t *testing.T) {
	p := Properties{"path": "/tmp/x", "n": 12, "empty": "", "null": nil}
	tests := []struct {
		name, want, err string
	}{
		{"path", "/tmp/x", ""},
		{"missing", "", `property "missing" is required`},
		{"null", "", `property "null" is required`},
		{"empty", "", `property "empty" is required`},
		{"n", "", `property "n": want a string, got 12`},
	}
	for _, tt := range tests {
		got, err := p.RequiredString(tt.name)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("RequiredString(%q) = %q, %q; want %q, %q", tt.name, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesInt(t *testing.T) {
	tests := []struct {
		v    any
		want int64
		err  string
	}{
		{nil, 7, ""}, // default
		{16, 16, ""},
		{int64(-3), -3, ""},
		{uint64(42), 42, ""},
		{uint64(math.MaxUint64), 0, `property "k": want an integer, got 18446744073709551615`},
		{float64(1000), 1000, ""}, // JSON
		{1.5, 0, `property "k": want an integer, got 1.5`},
		{math.Inf(1), 0, `property "k": want an integer, got +Inf`},
		{9.3e18, 0, `property "k": want an integer, got 9.3e+18`},
		{json.Number("12"), 12, ""},
		{json.Number("12.0"), 12, ""},
		{json.Number("12.5"), 0, `property "k": want an integer, got 12.5`},
		// Integer literals are read exactly, never through float64.
		{json.Number("9007199254740993"), 9007199254740993, ""},
		{json.Number("9223372036854775807"), math.MaxInt64, ""},
		{json.Number("-9223372036854775808"), math.MinInt64, ""},
		{json.Number("9223372036854775808"), 0, `property "k": want an integer, got 9223372036854775808`},
		{json.Number("-9223372036854775809"), 0, `property "k": want an integer, got -9223372036854775809`},
		{json.Number("1e+15"), 1e15, ""}, // a float literal: through float64
		{json.Number("1e400"), 0, `property "k": want an integer, got 1e400`},
		{"12", 0, `property "k": want an integer, got "12"`},
		{true, 0, `property "k": want an integer, got true`},
		{map[string]any{}, 0, `property "k": want an integer, got a map`},
	}
	for _, tt := range tests {
		p := Properties{}
		if tt.v != nil {
			p["k"] = tt.v
		}
		got, err := p.Int("k", 7)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("Int(%#v) = %d, %q; want %d, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesIntIn(t *testing.T) {
	tests := []struct {
		v    any
		want int64
		err  string
	}{
		{nil, 0, ""}, // the default, unchecked
		{1, 1, ""},
		{int64(1e18), 1e18, ""},
		{json.Number("1000000000000000000"), 1e18, ""},
		{1e18, 1e18, ""},
		{0, 0, `property "n": want an integer between 1 and 1000000000000000000, got 0`},
		{int64(1e18 + 1), 0, `property "n": want an integer between 1 and 1000000000000000000, got 1000000000000000001`},
		{"3", 0, `property "n": want an integer, got "3"`},
	}
	for _, tt := range tests {
		p := Properties{"n": tt.v}
		got, err := p.IntIn("n", 0, 1, 1e18)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("IntIn(%#v) = %d, %q; want %d, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesDurationIn(t *testing.T) {
	const want = `property "d": want a duration between 100ms and 24h, got `
	tests := []struct {
		v    any
		want time.Duration
		err  string
	}{
		{nil, 0, ""},
		{"100ms", 100 * time.Millisecond, ""},
		{"1 d", 24 * time.Hour, ""},
		{100, 100 * time.Millisecond, ""},
		{"99ms", 0, want + `"99ms"`},
		{"25h", 0, want + `"25h"`},
		{json.Number("86400001"), 0, want + `86400001`},
		{"soon", 0, `property "d": want a duration like 500ms, 10 s or 2 min, got "soon"`},
	}
	for _, tt := range tests {
		p := Properties{"d": tt.v}
		got, err := p.DurationIn("d", 0, 100*time.Millisecond, 24*time.Hour)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("DurationIn(%#v) = %v, %q; want %v, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesMemorySizeIn(t *testing.T) {
	const want = `property "m": want a memory size like 64kb or 1 mb, or a number of bytes, got `
	const rng = `property "m": want a memory size between 1 byte and 64 mb, got `
	tests := []struct {
		v    any
		want int64
		err  string
	}{
		{nil, 1 << 20, ""},
		{"1 mb", 1 << 20, ""},
		{"64kb", 64 << 10, ""},
		{"2 MiB", 2 << 20, ""},
		{100, 100, ""},
		{json.Number("67108864"), 64 << 20, ""},
		{1e3, 1000, ""},
		{"64 mb", 64 << 20, ""},
		{"65 mb", 0, rng + `"65 mb"`},
		{0, 0, rng + `0`},
		{-1, 0, rng + `-1`},
		{"1 eb", 0, want + `"1 eb"`},
		{"99999999999999999999 gb", 0, want + `"99999999999999999999 gb"`},
		{1.5, 0, want + `1.5`},
		{true, 0, want + `true`},
	}
	for _, tt := range tests {
		p := Properties{"m": tt.v}
		got, err := p.MemorySizeIn("m", 1<<20, 1, 64<<20)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("MemorySizeIn(%#v) = %v, %q; want %v, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesFloat(t *testing.T) {
	tests := []struct {
		v    any
		want float64
		err  string
	}{
		{nil, 0.5, ""},
		{1.5, 1.5, ""},
		{3, 3, ""},
		{uint64(math.MaxUint64), math.MaxUint64, ""},
		{json.Number("2.25"), 2.25, ""},
		{math.NaN(), 0, `property "f": want a number, got NaN`},
		{"1.5", 0, `property "f": want a number, got "1.5"`},
		{false, 0, `property "f": want a number, got false`},
	}
	for _, tt := range tests {
		p := Properties{}
		if tt.v != nil {
			p["f"] = tt.v
		}
		got, err := p.Float("f", 0.5)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("Float(%#v) = %v, %q; want %v, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesBool(t *testing.T) {
	tests := []struct {
		v    any
		want bool
		err  string
	}{
		{nil, true, ""},
		{false, false, ""},
		{true, true, ""},
		{"true", false, `property "b": want true or false, got "true"`},
		{1, false, `property "b": want true or false, got 1`},
	}
	for _, tt := range tests {
		p := Properties{}
		if tt.v != nil {
			p["b"] = tt.v
		}
		got, err := p.Bool("b", true)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("Bool(%#v) = %v, %q; want %v, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesDuration(t *testing.T) {
	const want = `want a duration like 500ms, 10 s or 2 min`
	tests := []struct {
		v    any
		want time.Duration
		err  string
	}{
		{nil, time.Second, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"10 s", 10 * time.Second, ""},
		{"2 min", 2 * time.Minute, ""},
		{"1m30s", 90 * time.Second, ""},
		{"250", 250 * time.Millisecond, ""}, // a bare number is milliseconds
		{250, 250 * time.Millisecond, ""},
		{float64(250), 250 * time.Millisecond, ""}, // JSON
		{0, 0, ""},
		{-1, 0, `property "d": ` + want + `, got -1`},
		{"-1s", 0, `property "d": ` + want + `, got "-1s"`},
		{"soon", 0, `property "d": ` + want + `, got "soon"`},
		{1.5, 0, `property "d": ` + want + `, got 1.5`},
		{int64(math.MaxInt64), 0, `property "d": ` + want + `, got 9223372036854775807`},
		{true, 0, `property "d": ` + want + `, got true`},
	}
	for _, tt := range tests {
		p := Properties{}
		if tt.v != nil {
			p["d"] = tt.v
		}
		got, err := p.Duration("d", time.Second)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("Duration(%#v) = %v, %q; want %v, %q", tt.v, got, errString(err), tt.want, tt.err)
		}
	}
}

func TestPropertiesMap(t *testing.T) {
	tests := []struct {
		v       any
		want    map[string]any
		present bool
		err     string
	}{
		{nil, nil, false, ""},
		{map[string]any{"count": "count"}, map[string]any{"count": "count"}, true, ""},
		{map[any]any{"top": "max(seq)"}, map[string]any{"top": "max(seq)"}, true, ""},
		{map[any]any{1: "x"}, nil, true, `property "m": map keys must be strings, got 1`},
		{"count", nil, true, `property "m": want a map, got "count"`},
		{[]any{1}, nil, true, `property "m": want a map, got a list`},
	}
	for _, tt := range tests {
		p := Properties{}
		if tt.v != nil {
			p["m"] = tt.v
		}
		got, present, err := p.Map("m")
		if !reflect.DeepEqual(got, tt.want) || present != tt.present || errString(err) != tt.err {
			t.Errorf("Map(%#v) = %v, %v, %q; want %v, %v, %q", tt.v, got, present, errString(err), tt.want, tt.present, tt.err)
		}
	}
}

func TestPropertiesUnknown(t *testing.T) {
	known := []PropertySpec{{Name: "path", Required: true}, {Name: "format"}}
	tests := []struct {
		p    Properties
		want []string
	}{
		{nil, nil},
		{Properties{"path": "x", "format": "json"}, nil},
		{Properties{"path": "x", "zeta": 1, "alpha": 2, "pth": 3}, []string{"alpha", "pth", "zeta"}},
	}
	for _, tt := range tests {
		if got := tt.p.Unknown(known); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Unknown(%v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
