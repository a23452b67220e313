package record

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON form.
//
// Writing: no spaces, fields in order, strings escaped as encoding/json does
// (without its HTML escaping; invalid UTF-8 becomes U+FFFD). Ints are
// written as integers. Floats are written in the shortest form that parses
// back to the same float64 (strconv's -1 precision), in decimal notation for
// 1e-6 <= |f| < 1e21 and exponent notation otherwise, like encoding/json and
// JavaScript; an integral float gets ".0" appended (2.0 is "2.0", not "2")
// so that DecodeJSON reads it back as a Float, never an Int. JSON cannot
// hold NaN or ±Inf: they are written as null, as JavaScript does.
//
// Reading: DecodeJSON is a small hand-written scanner rather than
// encoding/json. encoding/json's Token stream boxes every token in an
// interface and allocates every string, and cannot intern field names; the
// scanner decodes a record of known field names and numbers with no
// allocation, keeps field order, and tells ints from floats by the literal
// (which encoding/json only does through json.Number, another allocation).

// AppendJSON appends the JSON form of r, e.g. {"key":1,"seq":2}.
func (r *Record) AppendJSON(dst []byte) []byte {
	return appendFieldsJSON(dst, r.Fields)
}

func appendFieldsJSON(dst []byte, fs []Field) []byte {
	dst = append(dst, '{')
	for i := range fs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, fs[i].Name)
		dst = append(dst, ':')
		dst = fs[i].Value.AppendJSON(dst)
	}
	return append(dst, '}')
}

// AppendJSON appends the JSON form of v.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.kind {
	case KindBool:
		if v.num != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case KindInt:
		return strconv.AppendInt(dst, int64(v.num), 10)
	case KindFloat:
		return appendJSONFloat(dst, math.Float64frombits(v.num))
	case KindString:
		return appendJSONString(dst, v.str())
	case KindList:
		dst = append(dst, '[')
		for i, e := range v.list() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.AppendJSON(dst)
		}
		return append(dst, ']')
	case KindMap:
		return appendFieldsJSON(dst, v.mapFields())
	}
	return append(dst, "null"...)
}

func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-07 to e-7, as encoding/json does.
		n := len(dst)
		if n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, '.', '0')
}

const hexDigits = "0123456789abcdef"

func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript string
		// literals; escaping them costs nothing and helps log viewers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// DecodeJSON decodes one JSON object from src into r, after resetting r.
// Field order is kept; a repeated key keeps its first position and takes
// the last value (as Set would). Integers (no fraction or exponent) that fit
// in int64 become Ints, other numbers Floats; objects become maps and
// arrays lists. Surrounding whitespace is allowed, anything else after the
// object is an error. Errors name the byte offset of the problem.
func (d *Decoder) DecodeJSON(src []byte, r *Record) error {
	r.Reset()
	jr := jsonReader{src: src, d: d}
	jr.skipSpace()
	if jr.off >= len(src) {
		return jr.errorf("empty input, want a JSON object")
	}
	if src[jr.off] != '{' {
		return jr.errorf("top level is %s, want a JSON object", jr.describe())
	}
	fs, err := jr.object(r.Fields, 0)
	r.Fields = fs
	if err == nil {
		jr.skipSpace()
		if jr.off < len(src) {
			err = jr.errorf("unexpected %s after the object", jr.describe())
		}
	}
	if err != nil {
		r.Reset()
		return err
	}
	return nil
}

type jsonReader struct {
	src []byte
	off int
	d   *Decoder
}

func (jr *jsonReader) errorf(format string, args ...any) error {
	return fmt.Errorf("decode JSON at byte %d: %s", jr.off, fmt.Sprintf(format, args...))
}

// describe names what is at the current offset, for errors.
func (jr *jsonReader) describe() string {
	if jr.off >= len(jr.src) {
		return "end of input"
	}
	switch c := jr.src[jr.off]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c == 't' || c == 'f':
		return "a bool"
	case c == 'n':
		return "null"
	default:
		return strconv.QuoteRune(rune(c))
	}
}

func (jr *jsonReader) skipSpace() {
	for jr.off < len(jr.src) {
		switch jr.src[jr.off] {
		case ' ', '\t', '\n', '\r':
			jr.off++
		default:
			return
		}
	}
}

// expect consumes c after optional whitespace.
func (jr *jsonReader) expect(c byte, context string) error {
	jr.skipSpace()
	if jr.off >= len(jr.src) {
		return jr.errorf("unexpected end of input, want %q %s", c, context)
	}
	if jr.src[jr.off] != c {
		return jr.errorf("unexpected %s, want %q %s", jr.describe(), c, context)
	}
	jr.off++
	return nil
}

// object parses an object starting at '{', appending its fields to fs.
func (jr *jsonReader) object(fs []Field, depth int) ([]Field, error) {
	if depth >= maxDepth {
		return fs, jr.errorf("nesting deeper than %d", maxDepth)
	}
	jr.off++ // '{'
	jr.skipSpace()
	if jr.off < len(jr.src) && jr.src[jr.off] == '}' {
		jr.off++
		return fs, nil
	}
	var index fieldIndex
	for {
		jr.skipSpace()
		if jr.off >= len(jr.src) || jr.src[jr.off] != '"' {
			return fs, jr.errorf("unexpected %s, want a string key", jr.describe())
		}
		nb, err := jr.stringBytes()
		if err != nil {
			return fs, err
		}
		name := jr.d.name(nb)
		if err := jr.expect(':', "after object key"); err != nil {
			return fs, err
		}
		v, err := jr.value(depth)
		if err != nil {
			return fs, err
		}
		if i := findField(&index, fs, name); i >= 0 {
			fs[i].Value = v
		} else {
			fs = append(fs, Field{Name: name, Value: v})
			index.added(fs)
		}
		jr.skipSpace()
		if jr.off >= len(jr.src) {
			return fs, jr.errorf("unexpected end of input in object")
		}
		switch jr.src[jr.off] {
		case ',':
			jr.off++
		case '}':
			jr.off++
			return fs, nil
		default:
			return fs, jr.errorf("unexpected %s, want ',' or '}' in object", jr.describe())
		}
	}
}

func (jr *jsonReader) value(depth int) (Value, error) {
	jr.skipSpace()
	if jr.off >= len(jr.src) {
		return Value{}, jr.errorf("unexpected end of input, want a value")
	}
	switch c := jr.src[jr.off]; {
	case c == '{':
		fs, err := jr.object(nil, depth+1)
		if err != nil {
			return Value{}, err
		}
		return Map(&Record{Fields: fs}), nil
	case c == '[':
		return jr.array(depth + 1)
	case c == '"':
		b, err := jr.stringBytes()
		if err != nil {
			return Value{}, err
		}
		return String(jr.d.str(b)), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return jr.number()
	case c == 't':
		return Bool(true), jr.literal("true")
	case c == 'f':
		return Bool(false), jr.literal("false")
	case c == 'n':
		return Value{}, jr.literal("null")
	default:
		return Value{}, jr.errorf("unexpected %s, want a value", jr.describe())
	}
}

func (jr *jsonReader) literal(lit string) error {
	if len(jr.src)-jr.off < len(lit) || string(jr.src[jr.off:jr.off+len(lit)]) != lit {
		return jr.errorf("invalid literal, want %s", lit)
	}
	jr.off += len(lit)
	return nil
}

func (jr *jsonReader) array(depth int) (Value, error) {
	if depth >= maxDepth {
		return Value{}, jr.errorf("nesting deeper than %d", maxDepth)
	}
	jr.off++ // '['
	jr.skipSpace()
	if jr.off < len(jr.src) && jr.src[jr.off] == ']' {
		jr.off++
		return List(nil), nil
	}
	var vs []Value
	for {
		v, err := jr.value(depth)
		if err != nil {
			return Value{}, err
		}
		vs = append(vs, v)
		jr.skipSpace()
		if jr.off >= len(jr.src) {
			return Value{}, jr.errorf("unexpected end of input in array")
		}
		switch jr.src[jr.off] {
		case ',':
			jr.off++
		case ']':
			jr.off++
			return List(vs), nil
		default:
			return Value{}, jr.errorf("unexpected %s, want ',' or ']' in array", jr.describe())
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (jr *jsonReader) number() (Value, error) {
	start := jr.off
	src := jr.src
	i := jr.off
	neg := false
	if src[i] == '-' {
		neg = true
		i++
	}
	if i >= len(src) || !isDigit(src[i]) {
		jr.off = i
		return Value{}, jr.errorf("invalid number: want a digit")
	}
	intStart := i
	if src[i] == '0' {
		i++
	} else {
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	intEnd := i
	isFloat := false
	if i < len(src) && src[i] == '.' {
		isFloat = true
		i++
		if i >= len(src) || !isDigit(src[i]) {
			jr.off = i
			return Value{}, jr.errorf("invalid number: want a digit after '.'")
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		isFloat = true
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || !isDigit(src[i]) {
			jr.off = i
			return Value{}, jr.errorf("invalid number: want a digit in exponent")
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	jr.off = i
	if !isFloat {
		// Accumulate as a negative number so that math.MinInt64 fits.
		var n int64
		ok := true
		for _, c := range src[intStart:intEnd] {
			d := int64(c - '0')
			if n < (math.MinInt64+d)/10 {
				ok = false
				break
			}
			n = n*10 - d
		}
		if ok && !neg {
			if n == math.MinInt64 {
				ok = false
			} else {
				n = -n
			}
		}
		if ok {
			return Int(n), nil
		}
		// Too large for int64: a float, as JavaScript would read it.
	}
	f, err := strconv.ParseFloat(string(src[start:i]), 64)
	if err != nil {
		// Only range errors are possible after the grammar check; JSON
		// has no infinity, so say so rather than store one.
		jr.off = start
		return Value{}, jr.errorf("number %s is out of float64 range", src[start:i])
	}
	return Float(f), nil
}

// stringBytes parses a string starting at '"' and returns its unescaped
// bytes: a slice of src when there is no escape, else of the decoder's
// scratch buffer. Either is valid only until the next call.
func (jr *jsonReader) stringBytes() ([]byte, error) {
	jr.off++ // '"'
	src := jr.src
	start := jr.off
	i := start
	for i < len(src) {
		c := src[i]
		if c == '"' {
			jr.off = i + 1
			return src[start:i], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			jr.off = i
			return nil, jr.errorf("control character %#02x in string", c)
		}
		i++
	}
	if i >= len(src) {
		jr.off = i
		return nil, jr.errorf("unexpected end of input in string")
	}
	buf := append(jr.d.scratch[:0], src[start:i]...)
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"':
			jr.off = i + 1
			jr.d.scratch = buf
			return buf, nil
		case c < 0x20:
			jr.off = i
			return nil, jr.errorf("control character %#02x in string", c)
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		// An escape.
		if i+1 >= len(src) {
			break
		}
		esc := src[i+1]
		i += 2
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(src, i)
			if !ok {
				jr.off = i - 2
				return nil, jr.errorf(`invalid \u escape in string`)
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// A high surrogate must be followed by an escaped low one;
				// anything else is replaced, as encoding/json does.
				r2 := rune(-1)
				if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
					if x, ok := hex4(src, i+2); ok {
						r2 = x
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			jr.off = i - 2
			return nil, jr.errorf("invalid escape %q in string", []byte{'\\', esc})
		}
	}
	jr.off = len(src)
	return nil, jr.errorf("unexpected end of input in string")
}

func hex4(src []byte, i int) (rune, bool) {
	if i+4 > len(src) {
		return 0, false
	}
	var r rune
	for _, c := range src[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
