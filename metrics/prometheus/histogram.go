package prometheus

import (
	"math"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/spillway-io/spillway/histogram"
)

// nativeSchema is the native histograms' resolution: 2^6 = 64 buckets per
// power of two, each about 1.1% wide, as fine as Spillway's own (64 per
// power of two, at most 1/64 wide). A Spillway bucket goes into the native
// bucket of its middle value.
const nativeSchema = 6

// histMetric is a latency histogram, classic and native buckets both,
// built from a snapshot (prometheus.NewConstNativeHistogram has no classic
// buckets: a server scraping the text format would see none).
type histMetric struct {
	desc   *prom.Desc
	labels []*dto.LabelPair
	h      dto.Histogram
}

func (m *histMetric) Desc() *prom.Desc { return m.desc }

func (m *histMetric) Write(out *dto.Metric) error {
	out.Label, out.Histogram = m.labels, &m.h
	return nil
}

// newHistogram converts s, in seconds, with classic buckets at bounds.
func newHistogram(desc *prom.Desc, s *histogram.Snapshot, bounds []float64, labels []string) prom.Metric {
	m := &histMetric{desc: desc, labels: prom.MakeLabelPairs(desc, labels)}
	count, sum := s.Count(), s.Sum().Seconds()
	m.h.SampleCount, m.h.SampleSum = &count, &sum
	m.h.Schema = proto.Int32(nativeSchema)
	m.h.ZeroThreshold = proto.Float64(0)

	cumulative := make([]uint64, len(bounds))
	var zero uint64
	var idx []int32 // native bucket indexes, increasing
	var counts []int64
	s.Buckets(func(lower, upper time.Duration, c uint64) {
		mid := lower + (upper-lower-1)/2 // the bucket's middle value (ns)
		if mid <= 0 {
			zero += c
		} else {
			// Native bucket i holds (2^((i-1)/64), 2^(i/64)].
			i := int32(math.Ceil(math.Log2(time.Duration(mid).Seconds()) * (1 << nativeSchema)))
			if n := len(idx); n > 0 && idx[n-1] == i {
				counts[n-1] += int64(c)
			} else {
				idx, counts = append(idx, i), append(counts, int64(c))
			}
		}
		// Classic: le b counts the buckets starting at or below b (a
		// value at a bound, as 1 ms, is counted under it).
		for j, b := range bounds {
			if lower.Seconds() <= b {
				cumulative[j] += c
			}
		}
	})
	m.h.ZeroCount = proto.Uint64(zero)
	for j, b := range bounds {
		m.h.Bucket = append(m.h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(cumulative[j])})
	}
	// Spans of consecutive indexes; deltas from one bucket's count to the
	// next, across spans.
	var prev int64
	for k, i := range idx {
		if k == 0 || i != idx[k-1]+1 {
			gap := i
			if k > 0 {
				gap = i - idx[k-1] - 1
			}
			m.h.PositiveSpan = append(m.h.PositiveSpan, &dto.BucketSpan{Offset: proto.Int32(gap), Length: proto.Uint32(0)})
		}
		sp := m.h.PositiveSpan[len(m.h.PositiveSpan)-1]
		*sp.Length++
		m.h.PositiveDelta = append(m.h.PositiveDelta, counts[k]-prev)
		prev = counts[k]
	}
	if len(m.h.PositiveSpan) == 0 && zero == 0 {
		// An empty native histogram is told from a classic one by a span
		// of length 0 (as the client does).
		m.h.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(0)}}
	}
	return m
}
