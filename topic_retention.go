package spillway

import (
	"math"

	"github.com/spillway-io/spillway/mmap"
)

// retain applies a Persistent topic's retention to every shard's log: it
// lets go of the sealed segments every subscription has passed (Interest;
// but those the duplicate window needs) and of those past the limits
// (Limits; under Interest, only when the topic has no subscription). What
// the subscriptions' positions rest on is synced first: a power loss must
// not bring back a position whose messages are gone.
func (t *Topic) retain() {
	defer t.retains.Add(1)
	floors := make([]uint64, len(t.shards))
	t.filesMu.Lock() // the subscriptions' journals stay open meanwhile (Unsubscribe)
	subs := *t.groups.Load()
	any := false
	for i, s := range t.shards {
		log := s.d.log
		segs := log.Segments()
		if len(segs) < 2 {
			continue
		}
		floor := t.limitFloor(segs)
		interest := t.opts.Retention.Policy == Interest && len(subs) > 0
		for _, sub := range subs {
			ss := sub.shards[i]
			switch {
			case ss.j == nil:
			case interest && len(segs) >= 3 && segs[0].Sealed && ss.saved.Load() >= segs[0].Next:
				// A few unsettled messages keep the oldest segment, which
				// the subscription has otherwise passed: their bytes go
				// to the journal, so that one slow message does not keep
				// every later segment.
				ss.moveBelow(segs[0].Next, maxStragglers)
			case !interest && floor >= segs[0].Next:
				// The limits take the segments: unsettled messages in
				// them live on in the journal.
				ss.moveBelow(floor, math.MaxInt)
			}
		}
		if interest {
			floor = log.NextOffset()
			for _, sub := range subs {
				floor = min(floor, sub.shards[i].floor())
			}
		}
		if r := t.opts.Retention; r.Policy == Interest && (interest || r.MaxAge == 0 && r.MaxBytes == 0) {
			// The duplicate window's ids stay, unless limits apply: they
			// win.
			floor = t.dedupFloor(segs, floor, t.opts.Clock.Now().UnixNano())
		}
		if floor >= segs[0].Next {
			floors[i], any = floor, true
		}
	}
	t.filesMu.Unlock()
	if !any {
		return
	}
	if err := t.sy.waitRound(needState); err != nil {
		return // sticky, and reported by failStorage
	}
	for i, s := range t.shards {
		if floors[i] > 0 {
			s.d.log.Trim(floors[i])
		}
	}
}

// limitFloor returns the offset before which the limits let messages go:
// segments older than MaxAge, and the oldest while the shard holds more
// than MaxBytes. The active (last) segment always stays.
func (t *Topic) limitFloor(segs []mmap.SegmentInfo) uint64 {
	r := t.opts.Retention
	var floor uint64
	if r.MaxAge > 0 {
		cutoff := t.opts.Clock.Now().Add(-r.MaxAge).UnixNano()
		for _, sg := range segs[:len(segs)-1] {
			if sg.LastAt >= cutoff {
				break
			}
			floor = sg.Next
		}
	}
	if r.MaxBytes > 0 {
		kept := int64(0)
		for j := len(segs) - 1; j >= 0; j-- {
			if kept += segs[j].DataBytes; kept > r.MaxBytes && j < len(segs)-1 {
				floor = max(floor, segs[j].Next)
				break
			}
		}
	}
	if r.MaxAge == 0 && r.MaxBytes == 0 && r.Policy == Interest {
		floor = segs[len(segs)-1].Base // no subscription and no limit: nothing is kept
	}
	return floor
}

// floor is the offset before which ss has everything settled: its saved
// cursor, or, under ManualAck, its oldest unsettled delivery whose bytes
// the log keeps (the journal keeps the moved ones').
func (ss *subShard) floor() uint64 {
	f := ss.saved.Load()
	if ss.track {
		ss.leaseMu.Lock()
		if l := ss.byOffset.head; l != nil {
			f = min(f, l.offset)
		}
		ss.leaseMu.Unlock()
	}
	return f
}
