package config

import (
	"errors"
	"maps"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weirstream/weir/pkg/internal/fuzzcheck"
)

// FuzzParseValue checks every value syntax: ParseDuration, ParseMemorySize, ParsePortRange and the parser of every
// declared option. Errors quote the value (and name the key); values that parse are in range, agree with an
// independent computation for the Flink forms (number, unit), and parse back from a plain rendering.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{
		"500ms", "10 s", "10 S", "2 min", "1 h", "3 d", "100 milliseconds", "7 µs", "1m30s", "1.5h", "-1s", "1e3",
		"9223372036854775807 ns", "9223372036854775807", "9223372036854775808", "106751 d", "106752 d", " 10 s ",
		"32kb", "32 KiB", "1 gb", "8388607 tb", "8388608 tb", "12 parsecs",
		"0", "6123", "9249-9260", " 9249 - 9260 ", "0-10", "65536", "80-90-100",
		"true", "FALSE", "exactly_once", "1.4", "NaN", "+Inf", "", " ",
	} {
		f.Add(s)
	}
	for _, o := range Options() {
		f.Add(o.Default)
	}
	f.Fuzz(func(t *testing.T, s string) {
		quoted := strconv.Quote(s)
		d, err := ParseDuration(s)
		if err != nil {
			if !strings.Contains(err.Error(), quoted) {
				t.Fatalf("ParseDuration error %q does not quote the value", err)
			}
		} else {
			if d < 0 {
				t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
			}
			if back, err := ParseDuration(strconv.FormatInt(int64(d), 10) + "ns"); err != nil || back != d {
				t.Fatalf("ParseDuration(%q) = %v, which reads back as %v, %v", s, d, back, err)
			}
		}
		if n, unit, ok := flinkForm(s); ok {
			if mult, known := durationUnits[unit]; known || unit == "" {
				if !known {
					mult = time.Millisecond
				}
				checkProduct(t, "ParseDuration", s, n, int64(mult), int64(d), err)
			}
			if mult, known := memoryUnits[unit]; known || unit == "" {
				if !known {
					mult = 1
				}
				size, err := ParseMemorySize(s)
				checkProduct(t, "ParseMemorySize", s, n, mult, size, err)
			}
		}
		if size, err := ParseMemorySize(s); err != nil {
			if !strings.Contains(err.Error(), quoted) {
				t.Fatalf("ParseMemorySize error %q does not quote the value", err)
			}
		} else if back, err := ParseMemorySize(strconv.FormatInt(size, 10)); size < 0 || err != nil || back != size {
			t.Fatalf("ParseMemorySize(%q) = %d, which reads back as %d, %v", s, size, back, err)
		}
		if lo, hi, err := ParsePortRange(s); err != nil {
			if !strings.Contains(err.Error(), quoted) {
				t.Fatalf("ParsePortRange error %q does not quote the value", err)
			}
		} else {
			if lo < 0 || hi < lo || hi > 65535 || (lo == 0) != (hi == 0) {
				t.Fatalf("ParsePortRange(%q) = %d-%d", s, lo, hi)
			}
			if lo2, hi2, err := ParsePortRange(strconv.Itoa(lo) + "-" + strconv.Itoa(hi)); lo > 0 && (err != nil || lo2 != lo || hi2 != hi) {
				t.Fatalf("ParsePortRange(%q) = %d-%d, which reads back as %d-%d, %v", s, lo, hi, lo2, hi2, err)
			}
		}
		for _, o := range Options() {
			v, err := o.parse(s)
			if err != nil {
				var ve *ValueError
				if !errors.As(err, &ve) || ve.Key != o.Key || ve.Value != s || !strings.Contains(err.Error(), quoted) {
					t.Fatalf("%s: error %v does not name the key and the value", o.Key, err)
				}
				continue
			}
			checkTyped(t, o, s, v)
		}
	})
}

// flinkForm splits s as ParseDuration and ParseMemorySize read it: digits, then a unit.
func flinkForm(s string) (n *big.Int, unit string, ok bool) {
	t := strings.TrimSpace(s)
	digits := leadingDigits(t)
	if digits == 0 {
		return nil, "", false
	}
	n, ok = new(big.Int).SetString(t[:digits], 10)
	return n, strings.ToLower(strings.TrimSpace(t[digits:])), ok
}

// checkProduct: a value written as a number and a unit is number*unit, or an overflow error when that exceeds
// int64.
func checkProduct(t *testing.T, what, s string, n *big.Int, mult, got int64, err error) {
	t.Helper()
	want := new(big.Int).Mul(n, big.NewInt(mult))
	if !want.IsInt64() {
		if err == nil || !strings.Contains(err.Error(), "overflows") {
			t.Fatalf("%s(%q) = %d, %v; want an overflow error", what, s, got, err)
		}
		return
	}
	if err != nil || got != want.Int64() {
		t.Fatalf("%s(%q) = %d, %v; want %v", what, s, got, err, want)
	}
}

// checkTyped checks a value an option accepted: of the option's type and within its bounds.
func checkTyped(t *testing.T, o *Option, s string, v any) {
	t.Helper()
	var num float64
	hasNum := true
	switch o.Type {
	case TypeString:
		if v != s {
			t.Fatalf("%s: string %q parsed as %q", o.Key, s, v)
		}
		hasNum = false
	case TypeEnum:
		hasNum = false
		e, _ := v.(string)
		if !strings.EqualFold(e, strings.TrimSpace(s)) {
			t.Fatalf("%s: %q parsed as %q", o.Key, s, v)
		}
	case TypeBool:
		hasNum = false
		if _, ok := v.(bool); !ok {
			t.Fatalf("%s: %q parsed as %T", o.Key, s, v)
		}
	case TypeInt:
		num = float64(v.(int))
	case TypeFloat:
		num = v.(float64)
		if math.IsNaN(num) || math.IsInf(num, 0) {
			t.Fatalf("%s: %q parsed as %v", o.Key, s, num)
		}
	case TypeDuration:
		num = float64(v.(time.Duration))
	case TypeMemorySize:
		num = float64(v.(int64))
	case TypePortRange:
		hasNum = false
		if p := v.(portRange); p.lo < 0 || p.hi < p.lo || p.hi > 65535 {
			t.Fatalf("%s: %q parsed as %v", o.Key, s, p)
		}
	}
	if hasNum && ((o.Min != nil && num < *o.Min) || (o.Max != nil && num > *o.Max)) {
		t.Fatalf("%s: %q parsed as %v, out of [%v, %v]", o.Key, s, num, o.Min, o.Max)
	}
}

// FuzzLoad checks what Load does with a config file and -D flags (one per line of overrides): ParseYAML flattens
// within its limits, allocation stays proportional to the document, the flat keys survive a YAML round trip, and
// building the Config either fails with errors that name a key that was set, or gives a Config whose every getter
// works and whose ToMap builds the same Config again.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("taskmanager.numberOfTaskSlots: 2\ntaskmanager.memory.segment-size: 64 kb\n"), "heartbeat.interval=5 s")
	f.Add([]byte("taskmanager:\n  numberOfTaskSlots: 2\n  memory:\n    segment-size: 64 kb\nheartbeat: {interval: 5 s}\n"), "")
	f.Add([]byte("a: 010\nb: 1.0\nc: TRUE\nd: ~\ne:\nf: 'x: y'\ng: &x 3\nh: *x\n"), "log.level=loud\nx")
	f.Add([]byte("state.checkpoints.num-retained: 3\nexecution.checkpointing.num-retained: 2\n"), "restart-strategy=none\nparallelism.default=")
	f.Add([]byte("l0: &l0 {a: 1, b: 2}\nl1: &l1 {k0: *l0, k1: *l0}\nl2: {k0: *l1, k1: *l1}\n"), "=1")
	f.Add([]byte("a:\n  - 1\n<<: {b: 1}\n[a]: 1\n"), "heartbeat.interval=-1")
	f.Add([]byte("- a\n"), "pipeline.max-parallelism=99999999999999999999")
	f.Fuzz(func(t *testing.T, data []byte, overrides string) {
		var m map[string]string
		var err error
		fuzzcheck.BoundedAlloc(t, "ParseYAML", len(data), 16<<20, 4096, func() { m, err = ParseYAML(data) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse YAML: ") && !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q says neither what failed nor where", err)
			}
			m = nil
		} else {
			if len(m) > maxKeys {
				t.Fatalf("%d keys, more than %d", len(m), maxKeys)
			}
			for k := range m {
				if len(k) > maxKeyLen {
					t.Fatalf("key of %d bytes, more than %d", len(k), maxKeyLen)
				}
			}
			flat, err := yaml.Marshal(m)
			if err != nil {
				t.Fatalf("marshal %v: %v", m, err)
			}
			if back, err := ParseYAML(flat); err != nil || !maps.Equal(back, m) {
				t.Fatalf("flat keys do not read back:\n%s\ngave %q, %v; want %q", flat, back, err, m)
			}
		}
		var args []string
		if overrides != "" {
			args = strings.Split(overrides, "\n")
		}
		d, err := ParseOverrides(args)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid -D override ") {
				t.Fatalf("error %q does not say what was invalid", err)
			}
			d = nil
		}
		c, _, err := build(New(), layer{m, `config file "fuzz.yaml"`}, layer{d, "-D"})
		if err != nil {
			var multi interface{ Unwrap() []error }
			if !errors.As(err, &multi) {
				t.Fatalf("error %v is not a list", err)
			}
			for _, e := range multi.Unwrap() {
				var ve *ValueError
				if !errors.As(e, &ve) {
					t.Fatalf("error %v is not about a value", e)
				}
				_, inFile := m[ve.Key]
				_, inFlags := d[ve.Key]
				if !inFile && !inFlags {
					t.Fatalf("error %v names key %q, which was not set", e, ve.Key)
				}
			}
			return
		}
		for _, o := range Options() {
			switch o.Type {
			case TypeInt:
				c.Int(o)
			case TypeFloat:
				c.Float(o)
			case TypeBool:
				c.Bool(o)
			case TypeDuration:
				c.Duration(o)
			case TypeMemorySize:
				c.MemorySize(o)
			case TypePortRange:
				c.PortRange(o)
			default:
				c.String(o)
			}
		}
		c2, _, err := FromMap(c.ToMap())
		if err != nil || !maps.Equal(c2.ToMap(), c.ToMap()) {
			t.Fatalf("ToMap does not rebuild the Config: %v", err)
		}
	})
}
