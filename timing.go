package spillway

import (
	"math"
	"time"

	"github.com/spillway-io/spillway/histogram"
)

// timing is a group's latency recording (Options.LatencySampling): one
// message in every is timed, its send time stored with it (entry.at, on
// disk the record's Timestamp), so that the receiver that delivers it
// records how long it waited, and, under ManualAck, the Ack how long it
// was leased. Fixed once the group is open; the histograms record from
// any goroutine.
type timing struct {
	every uint32 // 1 in every messages is timed (a power of two); 0: none
	clock Clock
	// With SystemClock, now is the wall clock at open plus the monotonic
	// clock's progress since: one clock read instead of time.Now's two,
	// and immune to the wall clock's steps while the queue is open.
	system bool
	start  time.Time
	wall0  int64
	waits  histogram.Histogram // send to first delivery
	acks   histogram.Histogram // ManualAck: delivery to Ack
}

// init sets t up from o.
func (t *timing) init(o *Options) {
	if n := o.LatencySampling; n > 0 {
		t.every = uint32(n)
	}
	t.clock = o.Clock
	if _, ok := t.clock.(SystemClock); ok {
		t.system, t.start = true, time.Now()
		t.wall0 = t.start.UnixNano()
	}
}

// shareClock makes t read the same clock as from (with SystemClock, from
// the same origin), so that times one stamps the other can subtract.
func (t *timing) shareClock(from *timing) {
	t.clock, t.system, t.start, t.wall0 = from.clock, from.system, from.start, from.wall0
}

// now reads the clock, in unix ns.
func (t *timing) now() int64 {
	if t.system {
		return t.wall0 + int64(time.Since(t.start))
	}
	return t.clock.Now().UnixNano()
}

// timed reports whether the message at position pos is one timed
// messages are picked at (see stampsAt).
func (t *timing) timed(pos uint64) bool {
	return t.every != 0 && pos&(uint64(t.every)-1) == 0
}

// stampsAt picks the timed messages of a run of n at positions pos,
// pos+1, ... (in a ring, a spill or a log): those at a multiple of
// t.every, all with one reading of the clock. Picking by position costs no
// random number and times exactly 1 in every.
func (t *timing) stampsAt(pos uint64, n int) stamps {
	if t.every == 0 {
		return stamps{next: math.MaxInt}
	}
	st := stamps{next: int(-pos & uint64(t.every-1)), every: int(t.every)}
	if st.next >= n {
		st.next = math.MaxInt
	} else {
		st.at = t.now()
	}
	return st
}

// stamps hands out the send times of a run's messages in order (see
// timing.stampsAt).
type stamps struct {
	i, next, every int
	at             int64
}

// take returns the send time of the run's next message, or 0 if it is not
// timed.
func (st *stamps) take() int64 {
	var at int64
	if st.i == st.next {
		at = st.at
		st.next += st.every
	}
	st.i++
	return at
}

// waited records the wait of a timed message sent at at and delivered
// now: *now, read from the clock if it is 0 (one read per batch taken).
// Messages stamped by an earlier run of a Persistent queue that now times
// none are not recorded. Kept out of line: the delivering loops call it
// for 1 message in every.
//
//go:noinline
func (t *timing) waited(now *int64, at int64) {
	if t.every == 0 {
		return
	}
	if *now == 0 {
		*now = t.now()
	}
	t.waits.Record(time.Duration(*now - at))
}

// Latency summarizes a histogram of durations: how many were recorded and
// their percentiles (each within 1/128 of a recorded value; see package
// histogram).
type Latency struct {
	Count                    uint64
	P50, P90, P99, P999, Max time.Duration
}

// latencyOf summarizes s.
func latencyOf(s *histogram.Snapshot) Latency {
	return Latency{
		Count: s.Count(),
		P50:   s.Quantile(0.5), P90: s.Quantile(0.9), P99: s.Quantile(0.99), P999: s.Quantile(0.999),
		Max: s.Max(),
	}
}

// oldestLimit bounds how many ring slots a Stats call reads looking for a
// timed message.
const oldestLimit = 1024

// oldestLocked returns the send time of the oldest timed message s holds
// in memory for first delivery, or 0. REQUIRES: s.recvMu (which makes the
// caller the ring's consumer: it may read the published slots).
func (s *qshard) oldestLocked() int64 {
	if s.g.lat.every == 0 {
		return 0
	}
	var oldest int64
	older := func(at int64) {
		if at != 0 && (oldest == 0 || at < oldest) {
			oldest = at
		}
	}
	for i := s.lo; i < s.hi; i++ {
		if at := s.local[i].at; at > 0 {
			older(at)
			break
		}
	}
	for i := s.carryNext; i < len(s.carry); i++ {
		if at := s.carry[i].Timestamp; at != 0 {
			older(at)
			break
		}
	}
	head := s.ring.Head()
	k := s.ring.Peek(oldestLimit)
	for j := range k {
		if at := s.ring.At(head + uint64(j)).at; at != 0 {
			older(at)
			break
		}
	}
	return oldest
}

// finishTiming fills st's latencies from g's histograms, and OldestAge
// from oldest (a send time, unix ns; 0: none); h, if not nil, gets the
// histograms' snapshots.
func (g *group) finishTiming(st *Stats, oldest int64, h *Histograms) {
	if g.lat.every == 0 {
		return
	}
	if oldest != 0 {
		st.OldestAge = max(time.Duration(g.lat.now()-oldest), 0)
	}
	var local Histograms
	if h == nil {
		h = &local
	}
	st.QueueWait = latencyOf(g.lat.waits.Snapshot(&h.QueueWait))
	st.AckLatency = latencyOf(g.lat.acks.Snapshot(&h.AckLatency))
}

// Histograms are the latency histograms Stats summarizes, for exporters
// that want every bucket (StatsOptions.Histograms).
type Histograms struct {
	QueueWait, AckLatency histogram.Snapshot
}
