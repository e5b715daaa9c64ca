package spillway

import (
	"context"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// dedup is the duplicate window of a Queue or Topic: the ids
// (Message.ID) of the messages sent within the last DedupWindow, exactly
// (a map keyed by the id itself: no false positive, ever).
//
// Ids are spread over stripes by their hash, each under its own mutex:
// senders of different ids rarely meet. In a stripe, ids maps an id to when
// its message was sent (unix ns), or to pending while that send is under
// way; order lists the ids in the order they were sent, for the window to
// forget them from the oldest. A second send of an id whose first is
// pending waits for the first's outcome: if it fails, the id was never
// sent, and the second goes on as a first.
type dedup struct {
	window  int64 // ns
	max     int   // ids per stripe
	stripes [dedupStripes]dedupStripe
}

const dedupStripes = 64

// pending marks an id whose first send is under way.
const pending = -1

type dedupStripe struct {
	mu      sync.Mutex
	ids     map[string]int64
	order   []sentID // a circular buffer: order[head:] then order[:head], len n
	head, n int
	// waits holds, for a pending id that another send of it waits on, the
	// channel end closes; made only then.
	waits   map[string]chan struct{}
	evicted uint64 // ids forgotten before their window ended (the stripe was full)
	_       pad
}

type sentID struct {
	id string
	at int64
}

func newDedup(o *Options) *dedup {
	if o.DedupWindow < 0 {
		return nil
	}
	d := &dedup{window: int64(o.DedupWindow), max: max(1, o.DedupMaxIDs/dedupStripes)}
	for i := range d.stripes {
		st := &d.stripes[i]
		st.ids = make(map[string]int64)
	}
	return d
}

// begin reports whether id was sent within the window before now (dup), or
// else marks it pending: the caller sends its message and then calls end.
// It waits while another send of id is pending, until that one ends or ctx
// does.
func (d *dedup) begin(ctx context.Context, id string, now int64) (dup bool, err error) {
	st := &d.stripes[xxhash.Sum64String(id)&(dedupStripes-1)]
	for {
		st.mu.Lock()
		st.forget(now - d.window)
		at, ok := st.ids[id]
		switch {
		case !ok:
			st.ids[id] = pending
			st.mu.Unlock()
			return false, nil
		case at != pending:
			st.mu.Unlock()
			return true, nil
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
			return false, ctx.Err()
		}
	}
}

// end settles id, which begin marked pending: sent (at now) or not.
func (d *dedup) end(id string, sent bool, now int64) {
	st := &d.stripes[xxhash.Sum64String(id)&(dedupStripes-1)]
	st.mu.Lock()
	if sent {
		st.ids[id] = now
		st.push(sentID{id, now}, d.max)
	} else {
		delete(st.ids, id)
	}
	if c, ok := st.waits[id]; ok {
		close(c)
		delete(st.waits, id)
	}
	st.mu.Unlock()
}

// forget drops the ids sent before cutoff. REQUIRES: st.mu.
func (st *dedupStripe) forget(cutoff int64) {
	for st.n > 0 {
		s := &st.order[st.head]
		if s.at >= cutoff {
			return
		}
		st.pop()
	}
}

// pop forgets the oldest id. REQUIRES: st.mu, st.n > 0.
func (st *dedupStripe) pop() {
	s := &st.order[st.head]
	if st.ids[s.id] == s.at { // not sent again since (the later send is listed further on)
		delete(st.ids, s.id)
	}
	*s = sentID{}
	st.head = (st.head + 1) % len(st.order)
	st.n--
}

// push lists s as the newest, forgetting the oldest first when the stripe
// holds max. REQUIRES: st.mu.
func (st *dedupStripe) push(s sentID, limit int) {
	if st.n == limit {
		st.pop()
		st.evicted++
	}
	if st.n == len(st.order) {
		grown := make([]sentID, max(16, min(2*len(st.order), limit)))
		k := copy(grown, st.order[st.head:])
		copy(grown[k:], st.order[:st.head])
		st.order, st.head = grown, 0
	}
	st.order[(st.head+st.n)%len(st.order)] = s
	st.n++
}

// stats returns the ids held and those evicted early.
func (d *dedup) stats() (held int, evicted uint64) {
	for i := range d.stripes {
		st := &d.stripes[i]
		st.mu.Lock()
		held += len(st.ids)
		evicted += st.evicted
		st.mu.Unlock()
	}
	return held, evicted
}
