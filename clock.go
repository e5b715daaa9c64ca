package spillway

import (
	"sync"
	"time"
)

// Clock is the time source of a queue's leases and delays, injectable so
// that tests can drive them without sleeping.
type Clock interface {
	Now() time.Time
	// Ticker delivers the time on the returned channel about every d (a
	// slow receiver misses ticks, as with time.Ticker) until stop is called.
	Ticker(d time.Duration) (c <-chan time.Time, stop func())
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Ticker wraps time.NewTicker.
func (SystemClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// ManualClock is a Clock that moves only when told to. Its tickers fire
// from Advance. Safe for concurrent use.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers map[*manualTicker]struct{}
}

// manualTicker is a Ticker of a ManualClock: Advance sends on c each time
// the clock passes next. Guarded by the clock's mutex.
type manualTicker struct {
	c     chan time.Time
	every time.Duration
	next  time.Time
}

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, tickers: map[*manualTicker]struct{}{}}
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Ticker returns a ticker that fires when Advance passes its next tick.
func (c *ManualClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTicker{c: make(chan time.Time, 1), every: d, next: c.now.Add(d)}
	c.tickers[t] = struct{}{}
	return t.c, func() {
		c.mu.Lock()
		delete(c.tickers, t)
		c.mu.Unlock()
	}
}

// Advance moves the clock forward by d and fires every ticker whose next
// tick has come (once, however many periods passed).
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.tickers {
		if c.now.Before(t.next) {
			continue
		}
		// The first tick after now, computed rather than stepped to: a
		// clock moved by a month must not step a 1 ms ticker 2.6 G times.
		periods := c.now.Sub(t.next)/t.every + 1
		t.next = t.next.Add(periods * t.every)
		select {
		case t.c <- c.now:
		default: // a tick is already pending
		}
	}
}
