package network

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// consume drains g on its own goroutine, counting records, until io.EOF; the count (or -1 on error) is sent on the
// returned channel.
func consume(g *InputGate) <-chan int {
	out := make(chan int, 1)
	go func() {
		n := 0
		for {
			boe, ok, err := g.PollNext()
			if err == io.EOF {
				out <- n
				return
			}
			if err != nil {
				out <- -1
				return
			}
			if !ok {
				<-g.Available()
				continue
			}
			if boe.IsEvent {
				continue
			}
			data := boe.Buffer.Data()
			for len(data) > 0 {
				_, rest, err := NextRecord(data)
				if err != nil {
					out <- -1
					return
				}
				data = rest
				n++
			}
			boe.Buffer.Recycle()
		}
	}()
	return out
}

// benchPipeline emits b.N records of size bytes from a producer goroutine to a consumer goroutine.
func benchPipeline(b *testing.B, remote bool, size int) {
	benchPipelineWith(b, DefaultConfig(), remote, size)
}

// benchPipelineWith is benchPipeline on cfg. Besides records/s it reports the CPU time of the whole process (both
// ends of the pipeline, getrusage) per record: with a consumer that keeps up, what a record costs beyond the
// wall-clock rate.
func benchPipelineWith(b *testing.B, cfg Config, remote bool, size int) {
	pm := newManager(b, cfg)
	cm := pm
	if remote {
		cm = newManager(b, cfg)
	}
	p, err := pm.CreatePartition("bench/src/0/0/0", 1)
	if err != nil {
		b.Fatal(err)
	}
	g, err := cm.CreateInputGate([]ChannelSpec{{Partition: p.ID(), ProducerAddress: pm.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	counted := consume(g)
	rec := make([]byte, size)

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for i := 0; i < b.N; i++ {
		if err := p.EmitRecord(0, rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Finish(); err != nil {
		b.Fatal(err)
	}
	if n := <-counted; n != b.N {
		b.Fatalf("consumed %d records, want %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/record")
}

// processCPU is the user+system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEmitRecord measures the per-record producer path (16-byte records) with a local consumer keeping up.
func BenchmarkEmitRecord(b *testing.B) { benchPipeline(b, false, 16) }

func BenchmarkThroughputLocal(b *testing.B)       { benchPipeline(b, false, 100) }
func BenchmarkThroughputRemote(b *testing.B)      { benchPipeline(b, true, 100) }
func BenchmarkThroughputRemote16B(b *testing.B)   { benchPipeline(b, true, 16) }
func BenchmarkThroughputRemoteLarge(b *testing.B) { benchPipeline(b, true, 4096) }

func BenchmarkNextRecord(b *testing.B) {
	buf := make([]byte, 0, 32<<10)
	rec := make([]byte, 16)
	for len(buf)+17 <= cap(buf) {
		buf = append(buf, 16)
		buf = append(buf, rec...)
	}
	per := len(buf) / 17
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		data := buf
		for len(data) > 0 {
			_, data, _ = NextRecord(data)
			n++
		}
	}
	if n != b.N*per {
		b.Fatal("miscounted")
	}
}
