package histogram

import (
	"math"
	"time"
)

// Snapshot is a histogram's counts at one moment. The zero value is empty.
// Snapshots merge: the merge of two is what one histogram that recorded
// both would hold.
type Snapshot struct {
	counts [numBuckets]uint64
	count  uint64
	sum    uint64
	max    time.Duration
}

// Count is how many values were recorded.
func (s *Snapshot) Count() uint64 { return s.count }

// Sum is the total of the recorded values.
func (s *Snapshot) Sum() time.Duration { return time.Duration(s.sum) }

// Max is the largest value recorded, exactly; 0 if none.
func (s *Snapshot) Max() time.Duration { return s.max }

// Mean is the recorded values' average; 0 if none.
func (s *Snapshot) Mean() time.Duration {
	if s.count == 0 {
		return 0
	}
	return time.Duration(s.sum / s.count)
}

// Quantile returns the value below or at which a fraction q (0 to 1) of the
// recorded values fall: the midpoint of the bucket holding the value of
// rank ceil(q*Count), at most Max; 0 if nothing was recorded.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.count)))
	rank = min(max(rank, 1), s.count)
	var seen uint64
	for i, c := range s.counts {
		if seen += c; seen >= rank {
			lower, width := bounds(i)
			return min(time.Duration(lower+width/2), s.max)
		}
	}
	return s.max // not reached: the counts add up to count
}

// Merge adds o's counts to s.
func (s *Snapshot) Merge(o *Snapshot) {
	for i, c := range o.counts {
		s.counts[i] += c
	}
	s.count += o.count
	s.sum += o.sum
	s.max = max(s.max, o.max)
}

// Buckets calls fn for every bucket holding values, in increasing order:
// the bucket's bounds (values from lower up to, not including, upper) and
// how many values it holds. Exporters (Prometheus) re-bucket with it.
func (s *Snapshot) Buckets(fn func(lower, upper time.Duration, count uint64)) {
	for i, c := range s.counts {
		if c != 0 {
			lower, width := bounds(i)
			fn(time.Duration(lower), time.Duration(lower+width), c)
		}
	}
}
