package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/bench/internal/pipes"
	"github.com/spillway-io/spillway/internal/loadgen"
)

// BenchmarkTailLatency sends b.N 128-byte messages at a fixed rate from
// one goroutine to another and reports the percentiles of their latency,
// each counted from when it was meant to be sent (coordinated omission
// corrected), through a Spillway Queue, a buffered channel and core NATS
// in this process, in the same run. ns/op is the schedule's interval;
// the figures are the p50-ns ... max-ns columns. (cmd/latency prints the
// same as a table, with the spill and Persistent paths, and plots it.)
func BenchmarkTailLatency(b *testing.B) {
	impls := []struct {
		name string
		open func() (loadgen.Pipe, error)
	}{
		{"spillway", func() (loadgen.Pipe, error) {
			q, err := spillway.OpenQueue(spillway.Options{})
			return loadgen.QueuePipe{Q: q}, err
		}},
		{"chan", func() (loadgen.Pipe, error) { return loadgen.NewChanPipe(4096), nil }},
		{"nats", func() (loadgen.Pipe, error) { return pipes.Start() }},
		{"floor", func() (loadgen.Pipe, error) { return pipes.NewFloorPipe(4096), nil }},
	}
	for _, rate := range []float64{100e3, 1e6} {
		for _, im := range impls {
			b.Run(fmt.Sprintf("rate=%s/impl=%s", loadgen.RateName(rate), im.name), func(b *testing.B) {
				p, err := im.open()
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(128)
				b.ReportAllocs()
				b.ResetTimer()
				planned := time.Duration(float64(b.N) / rate * float64(time.Second))
				r, err := loadgen.Run(p, loadgen.Config{Rate: rate, Messages: b.N, Size: 128, Warmup: planned / 10})
				b.StopTimer()
				if cerr := p.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					b.Fatal(err)
				}
				if r.Latency.Count() > 0 {
					for _, q := range loadgen.Quantiles {
						b.ReportMetric(float64(r.Latency.Quantile(q.Q)), q.Name+"-ns")
					}
					b.ReportMetric(float64(r.Latency.Max()), "max-ns")
				}
			})
		}
	}
}
