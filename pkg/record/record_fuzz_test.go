package record

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/weirstream/weir/pkg/internal/fuzzcheck"
)

// Allocation bounds of the decoders: a constant (error messages of deeply nested input, intern tables) plus, per
// input byte, the Value or Field it may hold (64 and 80 bytes) with the slack of append growth. What they rule out is
// allocation driven by counts read from the input.
const (
	decodeAllocBase    = 8 << 20
	decodeAllocPerByte = 640
)

// seedRecords are records of every kind and shape, for the seed corpora.
func seedRecords() []*Record {
	many := &Record{}
	for i := range 2 * indexFieldsFrom {
		many.Set(strings.Repeat("k", i+1), Int(int64(i)))
	}
	return []*Record{
		sample(),
		benchRecord(),
		{},
		rec(f("", Null())),
		rec(f("m", Map(rec(f("l", List([]Value{Float(1), Null(), Float(math.NaN()), Float(math.Inf(-1))})))))),
		rec(f("deep", List([]Value{List([]Value{List([]Value{Map(nil)})})}))),
		rec(f("s", String(strings.Repeat("x", 300))), f("bad utf8", String("\xff\xfe"))),
		many,
	}
}

// FuzzDecodeBinary checks the binary decoder: no panic, allocation bounded by the input, errors that say where; and
// for input that decodes, that the encoding is canonical (re-encoding gives the same bytes), that equal records hash
// alike, and that the JSON form is valid JSON that reads back to a record with the same JSON form.
func FuzzDecodeBinary(f *testing.F) {
	for _, r := range seedRecords() {
		f.Add(r.AppendBinary(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 'a', 5, 2, 2, 2})
	f.Add([]byte{2, 1, 'a', 0, 1, 'a', 0})              // duplicate field
	f.Add([]byte{1, 1, 'a', 5, 0xff, 0xff, 0xff, 0x7f}) // a list of 268 million
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		var r Record
		var err error
		fuzzcheck.BoundedAlloc(t, "Decode", len(b), decodeAllocBase, decodeAllocPerByte, func() { err = d.Decode(b, &r) })
		if err != nil {
			if r.Len() != 0 {
				t.Fatalf("failed decode left %d fields in the record", r.Len())
			}
			if !strings.HasPrefix(err.Error(), "decode record: ") || !strings.Contains(err.Error(), "at byte ") {
				t.Fatalf("error %q does not say where decoding failed", err)
			}
			return
		}
		enc := r.AppendBinary(nil)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gave %x", b, enc)
		}
		var r2 Record
		if err := d.Decode(enc, &r2); err != nil || !r2.Equal(&r) {
			t.Fatalf("round trip of %s: %v, %s", &r, err, &r2)
		}
		checkHashAgrees(t, &r, &r2)
		checkJSONForm(t, &d, &r)
	})
}

// FuzzDecodeJSON checks the JSON decoder: no panic, allocation bounded by the input, errors that name the byte
// offset; only valid JSON objects are accepted, and what decodes survives the binary round trip and re-encodes to
// JSON that decodes to an equal record (equal outright when the input is valid UTF-8: invalid bytes in strings are
// written back as U+FFFD).
func FuzzDecodeJSON(f *testing.F) {
	for _, r := range seedRecords() {
		f.Add(r.AppendJSON(nil))
	}
	f.Add([]byte(`{"key":1,"seq":2}`))
	f.Add([]byte(`{"s":"\ud83d\ude00","a":[1,2.5,{"x":null}],"e":-0.0,"big":1e400}`))
	f.Add([]byte(` {"a":1,"a":2, "b" : [ true , false , null ] } `))
	f.Add([]byte(`{"n":9223372036854775808,"m":-9223372036854775808,"x":"\u2028\ud800"}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		var r Record
		var err error
		fuzzcheck.BoundedAlloc(t, "DecodeJSON", len(b), decodeAllocBase, decodeAllocPerByte, func() { err = d.DecodeJSON(b, &r) })
		if err != nil {
			if r.Len() != 0 {
				t.Fatalf("failed decode left %d fields in the record", r.Len())
			}
			if !strings.HasPrefix(err.Error(), "decode JSON at byte ") {
				t.Fatalf("error %q does not name the byte offset", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		var r2 Record
		if err := d.Decode(r.AppendBinary(nil), &r2); err != nil || !r2.Equal(&r) {
			t.Fatalf("binary round trip of %s: %v %s", &r, err, &r2)
		}
		checkHashAgrees(t, &r, &r2)
		js := checkJSONForm(t, &d, &r)
		if utf8.Valid(b) {
			var r3 Record
			if err := d.DecodeJSON(js, &r3); err != nil || !r3.Equal(&r) {
				t.Fatalf("JSON round trip of %q: %v, %s", b, err, &r3)
			}
		}
	})
}

// checkHashAgrees: equal records have equal keys and hashes.
func checkHashAgrees(t *testing.T, a, b *Record) {
	t.Helper()
	va, vb := Map(a), Map(b)
	if !bytes.Equal(va.AppendKey(nil), vb.AppendKey(nil)) || va.Hash64() != vb.Hash64() {
		t.Fatalf("equal records %s have different keys or hashes", a)
	}
}

// checkJSONForm checks that the JSON form of r is valid and reads back, and that one trip through JSON reaches a
// fixed point (the first may change r: NaN and infinities become null, invalid UTF-8 becomes U+FFFD). It returns
// the JSON form of r.
func checkJSONForm(t *testing.T, d *Decoder, r *Record) []byte {
	t.Helper()
	js := r.AppendJSON(nil)
	if !json.Valid(js) {
		t.Fatalf("invalid JSON %s", js)
	}
	var back, again Record
	if err := d.DecodeJSON(js, &back); err != nil {
		t.Fatalf("DecodeJSON(%s): %v", js, err)
	}
	js2 := back.AppendJSON(nil)
	if err := d.DecodeJSON(js2, &again); err != nil || !again.Equal(&back) {
		t.Fatalf("JSON form not stable: %s read back as %s: %v", js2, &again, err)
	}
	return js
}
