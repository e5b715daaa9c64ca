package spillway

import (
	"unsafe"
)

// delayWheel holds delayed messages until they are due: a hierarchical
// timing wheel (as the Linux kernel's classic timers, Varghese and Lauck's
// scheme 7) over nodes kept in a slab. Adding a message, and firing it,
// is O(1) whatever the number waiting; a message moves down the levels at
// most delayLevels-1 times in its life. Advancing over a stretch with
// nothing due skips it a whole turn of a level at a time, so that a clock
// that jumps a month costs a few hundred steps, not a step per tick.
//
// Level k has delaySlots slots, each delaySlots^k ticks wide: with 10 ms
// ticks, level 0 spans 2.56 s, level 1 11 minutes, level 2 47 hours, level
// 3 16 months, level 4 the rest (a due further than it reaches waits in
// its last slot and moves down when its turn comes).
//
// Not safe for concurrent use: its owner's mutex guards it.
type delayWheel struct {
	now    int64 // the tick advanced to: every node due by it has fired
	slots  [delayLevels][delaySlots]delayList
	counts [delayLevels]int
	nodes  delaySlab
}

const (
	delayBits   = 8
	delaySlots  = 1 << delayBits
	delayLevels = 5
)

// delayList is a FIFO of nodes, by index; -1: none.
type delayList struct{ head, tail int32 }

// delayNode is a delayed message: its slices as pointers (lengths packed
// as in tentry), its expiry, when it is due (unix ns, and tick) and its
// priority. 64 bytes: the message's own bytes are the sender's.
type delayNode struct {
	key     *byte
	value   *byte
	headers *Header
	lens    uint64
	exp     int64
	at      int64 // due, unix ns
	tick    int64 // due, ticks
	next    int32
	prio    uint8
}

var _ = [1]struct{}{}[unsafe.Sizeof(delayNode{})-64]

// message returns n's message, as Send got it but for its lifecycle
// fields: only its expiry and priority stay.
func (n *delayNode) message() Message {
	t := tentry{key: n.key, value: n.value, headers: n.headers, lens: n.lens}
	m := Message{
		Key:      unsafe.Slice(t.key, t.keyLen()),
		Value:    unsafe.Slice(t.value, t.valLen()),
		Headers:  unsafe.Slice(t.headers, t.hdrLen()),
		Priority: n.prio,
	}
	return m
}

func newDelayWheel(now int64) *delayWheel {
	w := &delayWheel{now: now}
	for l := range w.slots {
		for i := range w.slots[l] {
			w.slots[l][i] = delayList{-1, -1}
		}
	}
	w.nodes.free = -1
	return w
}

// len returns how many messages wait.
func (w *delayWheel) len() int {
	n := 0
	for _, c := range w.counts {
		n += c
	}
	return n
}

// add puts m in the wheel, due at unix ns at, tick t (> w.now), expiring
// at exp (0: never).
func (w *delayWheel) add(m *Message, at, t, exp int64) {
	i := w.nodes.alloc()
	n := w.nodes.at(i)
	var te tentry
	te.set(m.Key, m.Value, m.Headers)
	n.key, n.value, n.headers, n.lens = te.key, te.value, te.headers, te.lens
	n.exp, n.at, n.tick, n.prio = exp, at, t, m.Priority
	w.place(i, n)
}

// place lists node i in the slot of its tick: the lowest level whose span
// from now reaches it.
func (w *delayWheel) place(i int32, n *delayNode) {
	delta := n.tick - w.now
	l := 0
	for l < delayLevels-1 && delta >= 1<<(delayBits*(l+1)) {
		l++
	}
	t := n.tick
	if l == delayLevels-1 && delta >= 1<<(delayBits*delayLevels) {
		t = w.now + 1<<(delayBits*delayLevels) - 1 // the furthest slot: it comes down again in its turn
	}
	slot := &w.slots[l][(t>>(delayBits*l))&(delaySlots-1)]
	n.next = -1
	if slot.tail < 0 {
		slot.head = i
	} else {
		w.nodes.at(slot.tail).next = i
	}
	slot.tail = i
	w.counts[l]++
}

// advance moves the wheel to tick to, appending the nodes that come due to
// fired (in the order of their slots: by tick, and in a tick by when they
// were added). The caller frees them (nodes.release) once it has taken
// their messages.
func (w *delayWheel) advance(to int64, fired []int32) []int32 {
	for w.now < to {
		if w.counts[0] == 0 {
			// Nothing in level 0: go to the next turn of the lowest level
			// that holds something, or to to.
			k := 1
			for k < delayLevels && w.counts[k] == 0 {
				k++
			}
			if k == delayLevels {
				w.now = to
				return fired
			}
			last := w.now | (1<<(delayBits*k) - 1) // the tick before level k's slot turns
			if last >= to {
				w.now = to
				return fired
			}
			w.now = last
		}
		w.now++
		if w.now&(delaySlots-1) == 0 {
			w.cascade(1)
		}
		fired = w.take(0, int(w.now&(delaySlots-1)), fired)
	}
	return fired
}

// cascade moves the nodes of level l's current slot down, after level
// l+1's, if level l's index turned to 0.
func (w *delayWheel) cascade(l int) {
	idx := int(w.now>>(delayBits*l)) & (delaySlots - 1)
	if idx == 0 && l+1 < delayLevels {
		w.cascade(l + 1)
	}
	slot := &w.slots[l][idx]
	i := slot.head
	*slot = delayList{-1, -1}
	for i >= 0 {
		n := w.nodes.at(i)
		next := n.next
		w.counts[l]--
		w.place(i, n)
		i = next
	}
}

// take appends level l's slot idx's nodes to fired and empties it.
func (w *delayWheel) take(l, idx int, fired []int32) []int32 {
	slot := &w.slots[l][idx]
	for i := slot.head; i >= 0; i = w.nodes.at(i).next {
		fired = append(fired, i)
		w.counts[l]--
	}
	*slot = delayList{-1, -1}
	return fired
}

// delaySlab is the wheel's nodes, in chunks that never move, with a free
// list through next.
type delaySlab struct {
	chunks [][]delayNode
	free   int32
}

const delayChunk = 1 << 12

func (s *delaySlab) at(i int32) *delayNode { return &s.chunks[i/delayChunk][i%delayChunk] }

func (s *delaySlab) alloc() int32 {
	if s.free < 0 {
		base := int32(len(s.chunks) * delayChunk)
		c := make([]delayNode, delayChunk)
		for j := range c {
			c[j].next = base + int32(j) + 1
		}
		c[delayChunk-1].next = -1
		s.chunks = append(s.chunks, c)
		s.free = base
	}
	i := s.free
	s.free = s.at(i).next
	return i
}

// release frees node i, dropping its message's references.
func (s *delaySlab) release(i int32) {
	n := s.at(i)
	*n = delayNode{next: s.free}
	s.free = i
}
