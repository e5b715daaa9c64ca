package spillway

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// delayer holds a Queue's (or Topic's) delayed messages until they are
// due, then hands them to send, in due order.
//
// Who may do what: any sender adds (under mu); one goroutine, the mover,
// started at the first add, advances the wheel on the clock's ticks (under
// mu) and hands what came due to send without mu (send may wait for room:
// adds go on meanwhile). The ticker runs only while the wheel holds
// messages: an idle delayer costs no wakeup. close, once, stops and joins
// the mover; what the wheel still holds stays in it, for the owner to count
// (or keep).
type delayer struct {
	clock Clock
	tick  int64 // ns
	epoch int64 // unix ns of tick 0
	send  func([]dueMessage)

	mu       sync.Mutex
	w        *delayWheel
	tickC    <-chan time.Time // nil while the wheel is empty
	stopTick func()
	started  bool
	closed   bool
	fired    []int32      // scratch for the mover
	out      []dueMessage // scratch for the mover

	kick    chan struct{} // a ticker was started: the mover takes its channel
	stop    chan struct{}
	wg      sync.WaitGroup
	waiting atomic.Int64  // in the wheel, or fired and not yet handed over (Stats.Delayed)
	fires   atomic.Uint64 // fires done (tests wait on it)
	// lastNow is the clock's time (unix ns) at the mover's last fire, or
	// at the add that started the ticker: at most a tick (and the mover's
	// lag) behind the clock while the ticker runs; 0 while it does not.
	lastNow atomic.Int64
}

// dueMessage is a delayed message that came due: its expiry (unix ns, 0:
// never) and when it was due (unix ns).
type dueMessage struct {
	m   Message
	exp int64
	due int64
}

func newDelayer(c Clock, tick time.Duration, send func([]dueMessage)) *delayer {
	epoch := c.Now().UnixNano()
	return &delayer{
		clock: c, tick: int64(tick), epoch: epoch, send: send,
		w:    newDelayWheel(0),
		kick: make(chan struct{}, 1), stop: make(chan struct{}),
	}
}

// tickOf returns the tick in progress at unix ns t (floor), dueTick the
// first tick at or after it (ceiling).
func (d *delayer) tickOf(t int64) int64 { return floorDiv(t-d.epoch, d.tick) }
func (d *delayer) dueTick(t int64) int64 {
	return floorDiv(t-d.epoch+d.tick-1, d.tick)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// coarseNow returns a time the clock has passed, at most a tick and the
// mover's lag ago, or 0 if the delayer is idle. A message due after it
// can go into the wheel without a clock read: if it is in fact due
// already, the next tick delivers it, within the delay's resolution.
func (d *delayer) coarseNow() int64 { return d.lastNow.Load() }

// add holds m until unix ns at (after now), with expiry exp. It fails
// with ErrClosed after close.
func (d *delayer) add(m *Message, at, exp, now int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.tickC == nil {
		// The wheel is empty and its ticker stopped: bring it to now
		// (nothing to fire) and start ticking again.
		d.w.now = max(d.w.now, d.tickOf(now))
		d.tickC, d.stopTick = d.clock.Ticker(time.Duration(d.tick))
		d.lastNow.Store(now)
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	if !d.started {
		d.started = true
		d.wg.Add(1)
		go d.run()
	}
	d.w.add(m, at, max(d.dueTick(at), d.w.now+1), exp)
	d.waiting.Add(1)
	return nil
}

// run is the mover.
func (d *delayer) run() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		c := d.tickC
		d.mu.Unlock()
		select {
		case <-d.stop:
			return
		case <-d.kick:
			continue
		case <-c: // nil while empty: never
		}
		d.fire()
	}
}

// fire advances the wheel to the clock's time and hands what came due to
// send, in due order.
func (d *delayer) fire() {
	now := d.clock.Now().UnixNano()
	d.mu.Lock()
	fired := d.w.advance(d.tickOf(now), d.fired[:0])
	out := d.out[:0]
	for _, i := range fired {
		n := d.w.nodes.at(i)
		out = append(out, dueMessage{m: n.message(), exp: n.exp, due: n.at})
		d.w.nodes.release(i)
	}
	d.fired = fired
	d.lastNow.Store(now)
	if d.w.len() == 0 && d.tickC != nil {
		d.stopTick()
		d.tickC, d.stopTick = nil, nil
		d.lastNow.Store(0)
	}
	d.mu.Unlock()
	if len(out) > 0 {
		// A slot holds a tick's messages in the order they were added:
		// put them in due order (stable: equal times keep it).
		slices.SortStableFunc(out, func(a, b dueMessage) int {
			switch {
			case a.due < b.due:
				return -1
			case a.due > b.due:
				return 1
			}
			return 0
		})
		d.send(out)
		d.waiting.Add(-int64(len(out)))
		clear(out)
	}
	d.out = out[:0]
	d.fires.Add(1)
}

// close stops the mover and returns how many messages were still held.
// Idempotent.
func (d *delayer) close() int {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return 0
	}
	d.closed = true
	if d.tickC != nil {
		d.stopTick()
		d.tickC, d.stopTick = nil, nil
	}
	close(d.stop)
	d.mu.Unlock()
	d.wg.Wait()
	n := d.w.len()
	d.waiting.Store(0)
	return n
}
