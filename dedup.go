package spillway

import (
	"context"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// dedup is the duplicate window of a Queue or Topic: the ids
// (Message.ID) of the messages sent within the last DedupWindow, exactly
// (maps keyed by the id itself, each with its send time: no false
// positive, ever, and an id sent longer ago than the window is not taken
// for a duplicate).
//
// Ids are spread over stripes by their hash, each under its own mutex:
// senders of different ids rarely meet. A stripe keeps two generations of
// ids, cur and prev, and never deletes an id from a map (a map that
// churns through deletes fills with tombstones and its lookups slow down
// many times over): new ids go into cur; prev is dropped whole once its
// newest id is older than the window (its map is cleared and reused as a
// later cur: a stripe in steady state allocates nothing); cur becomes
// prev when it holds half the stripe's share of DedupMaxIDs (prev's ids
// still within the window are then forgotten early, and counted), or,
// when there is no prev, once its oldest id is older than the window (so
// that a quiet queue forgets too). A stripe thus holds at most its share
// of DedupMaxIDs.
//
// A second send of an id whose first is pending waits for the first's
// outcome: if it fails, the id was never sent, and the second goes on as
// a first.
type dedup struct {
	window int64 // ns
	half   int   // ids per generation of a stripe
	stripe [dedupStripes]dedupStripe
}

const dedupStripes = 64

// pending is the time of an id whose first send is under way.
const pending = -1

type dedupStripe struct {
	mu        sync.Mutex
	cur, prev map[string]int64 // id → when its message was sent (unix ns), or pending
	// spare is the last prev dropped, for the next cur (its ids stay
	// referenced until then: at most a generation's).
	spare      map[string]int64
	curOldest  int64 // the first send time cur holds
	curNewest  int64 // the last
	prevNewest int64
	// turns counts the times cur became prev: a pending id that begin put
	// in cur is still there if turns has not moved since (end's shortcut).
	turns uint64
	// waits holds, for a pending id that another send of it waits on, the
	// channel end closes; made only then.
	waits   map[string]chan struct{}
	evicted uint64 // ids forgotten before their window ended (the stripe was full)
	_       pad
}

func newDedup(o *Options) *dedup {
	if o.DedupWindow < 0 {
		return nil
	}
	d := &dedup{window: int64(o.DedupWindow), half: max(1, o.DedupMaxIDs/dedupStripes/2)}
	for i := range d.stripe {
		d.stripe[i].cur = make(map[string]int64)
	}
	return d
}

// hashID returns id's hash, which picks its stripe.
func hashID(id string) uint64 { return xxhash.Sum64String(id) }

func (d *dedup) stripeOf(h uint64) *dedupStripe {
	return &d.stripe[h&(dedupStripes-1)]
}

// begin reports whether id was sent within the window before now (dup), or
// else marks it pending: the caller sends its message and then calls end
// with the ticket. While another send of id is pending it waits until
// that one ends or ctx does, or, without wait, fails with ErrFull (a
// TrySend must not wait).
func (d *dedup) begin(ctx context.Context, id string, now int64, wait bool) (dup bool, tk dedupTicket, err error) {
	h := hashID(id)
	st := d.stripeOf(h)
	for {
		st.mu.Lock()
		st.age(now, d)
		at, ok := st.cur[id]
		if !ok && st.prev != nil {
			at, ok = st.prev[id]
		}
		switch {
		case !ok || at != pending && at < now-d.window:
			st.insert(id, pending, now)
			tk = dedupTicket{st, st.turns}
			st.mu.Unlock()
			return false, tk, nil
		case at != pending:
			st.mu.Unlock()
			return true, tk, nil
		}
		if !wait {
			st.mu.Unlock()
			return false, tk, fmt.Errorf("%w: a send of ID %q is under way", ErrFull, id)
		}
		if st.waits == nil {
			st.waits = make(map[string]chan struct{})
		}
		c := st.waits[id]
		if c == nil {
			c = make(chan struct{})
			st.waits[id] = c
		}
		st.mu.Unlock()
		select {
		case <-c:
		case <-ctx.Done():
			return false, tk, ctx.Err()
		}
	}
}

// insert puts id in cur, sent at at (or pending) at now. REQUIRES: st.mu.
func (st *dedupStripe) insert(id string, at, now int64) {
	if len(st.cur) == 0 {
		st.curOldest = now
	}
	st.cur[id] = at
}

// dedupTicket is what begin tells end: id's stripe, and its turn then.
type dedupTicket struct {
	st   *dedupStripe
	turn uint64
}

// end settles id, which begin marked pending (tk): sent (at now) or not.
func (d *dedup) end(id string, tk dedupTicket, sent bool, now int64) {
	st := tk.st
	st.mu.Lock()
	if sent && tk.turn == st.turns && st.waits == nil {
		// Still in cur, and nobody waits: one map write.
		st.cur[id] = now
		st.curNewest = max(st.curNewest, now)
		st.mu.Unlock()
		return
	}
	m, newest := st.cur, &st.curNewest
	if _, ok := m[id]; !ok && st.prev != nil {
		if _, ok := st.prev[id]; ok {
			m, newest = st.prev, &st.prevNewest
		}
	}
	if sent {
		m[id] = now
		*newest = max(*newest, now)
	} else {
		delete(m, id) // rare: a failed send
	}
	if c, ok := st.waits[id]; ok {
		close(c)
		delete(st.waits, id)
		if len(st.waits) == 0 {
			st.waits = nil // end's shortcut again
		}
	}
	st.mu.Unlock()
}

// age drops what the window and the stripe's share let go, as the type's
// comment says. REQUIRES: st.mu.
func (st *dedupStripe) age(now int64, d *dedup) {
	cutoff := now - d.window
	if st.prev != nil && st.prevNewest < cutoff {
		st.dropPrev(cutoff)
	}
	full := len(st.cur) >= d.half
	if !full && (st.prev != nil || len(st.cur) == 0 || st.curOldest >= cutoff) {
		return
	}
	st.dropPrev(cutoff)
	st.prev, st.prevNewest = st.cur, st.curNewest
	st.turns++
	if st.cur = st.spare; st.cur != nil {
		clear(st.cur) // keeps its room: a stripe in steady state allocates nothing
		st.spare = nil
	} else {
		st.cur = make(map[string]int64, len(st.prev))
	}
	st.curOldest, st.curNewest = now, 0
}

// dropPrev drops prev, counting its ids still within the window (cutoff)
// as evicted, and keeping its pending ones (in cur). REQUIRES: st.mu.
func (st *dedupStripe) dropPrev(cutoff int64) {
	if st.prev == nil {
		return
	}
	for id, at := range st.prev {
		switch {
		case at == pending:
			if _, ok := st.cur[id]; !ok {
				st.cur[id] = pending // a retry must still find it
			}
		case at >= cutoff:
			st.evicted++
		}
	}
	st.prev, st.spare = nil, st.prev
}

// restore puts id, sent at at, in the window, as a reopen finds it.
func (d *dedup) restore(id string, at int64) {
	h := hashID(id)
	st := d.stripeOf(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.age(at, d)
	if prev, ok := st.cur[id]; ok && prev >= at {
		return
	}
	st.insert(id, at, at)
	st.curNewest = max(st.curNewest, at)
}

// stats returns the ids held and those evicted early.
func (d *dedup) stats() (held int, evicted uint64) {
	for i := range d.stripe {
		st := &d.stripe[i]
		st.mu.Lock()
		held += len(st.cur) + len(st.prev)
		evicted += st.evicted
		st.mu.Unlock()
	}
	return held, evicted
}
