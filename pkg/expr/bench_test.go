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

// BenchmarkEvalMap is a map operator's per-record cost: the map of weir's
// end-to-end pipeline benchmark, and word count's.
func BenchmarkEvalMap(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"pipeline", `{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`},
		{"wordcount", `{"word": record.line, "n": 1}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := mustCompile(b, bc.src, ResultMap)
			in := benchInput(b)
			var out record.Record
			b.ReportAllocs()
			for b.Loop() {
				if err := p.EvalMap(in, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
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
