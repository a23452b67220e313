package expr

import (
	"testing"

	"github.com/weirstream/weir/pkg/record"
)

func benchInput(b *testing.B) *record.Record {
	return mustJSON(b, `{"seq":1234,"key":7,"line":"the quick brown fox","score":0.5}`)
}

// BenchmarkEvalBool is a filter's per-record cost.
func BenchmarkEvalBool(b *testing.B) {
	p := mustCompile(b, "record.seq % 2 == 0", ResultBool)
	in := benchInput(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.EvalBool(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalBoolString(b *testing.B) {
	p := mustCompile(b, `record.line.startsWith("the") && record.score > 0.1`, ResultBool)
	in := benchInput(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.EvalBool(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalMap is a map operator's per-record cost.
func BenchmarkEvalMap(b *testing.B) {
	p := mustCompile(b, `{"word": record.line, "n": 1}`, ResultMap)
	in := benchInput(b)
	var out record.Record
	b.ReportAllocs()
	for b.Loop() {
		if err := p.EvalMap(in, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalMapIdentity(b *testing.B) {
	p := mustCompile(b, `record`, ResultMap)
	in := benchInput(b)
	var out record.Record
	b.ReportAllocs()
	for b.Loop() {
		if err := p.EvalMap(in, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalListSplit is word count's flatMap: 4 words per record.
func BenchmarkEvalListSplit(b *testing.B) {
	p := mustCompile(b, `record.line.split(" ").map(w, {"word": w})`, ResultListOfMaps)
	in := benchInput(b)
	emit := func(*record.Record) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.EvalList(in, emit); err != nil {
			b.Fatal(err)
		}
	}
}
