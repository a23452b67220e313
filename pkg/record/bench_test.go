package record

import "testing"

func benchRecord() *Record {
	return rec(f("key", Int(42)), f("seq", Int(1234567)), f("ts", Int(1700000000000)), f("amount", Int(-17)))
}

// BenchmarkDecodeInts is the hot path of a network input: a record of int
// fields whose names the decoder has seen. It must not allocate.
func BenchmarkDecodeInts(b *testing.B) {
	src := benchRecord().AppendBinary(nil)
	var d Decoder
	var r Record
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := d.Decode(src, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	src := rec(f("key", Int(42)), f("line", String("the quick brown fox")), f("score", Float(0.5))).AppendJSON(nil)
	var d Decoder
	var r Record
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := d.DecodeJSON(src, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendBinary(b *testing.B) {
	r := benchRecord()
	r.Set("line", String("the quick brown fox"))
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendBinary(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendJSON(b *testing.B) {
	r := benchRecord()
	r.Set("line", String("the quick brown fox"))
	r.Set("score", Float(0.25))
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkHash64(b *testing.B) {
	v := String("user-1234")
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink += v.Hash64()
	}
	_ = sink
}
