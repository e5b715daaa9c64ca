package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/histogram"
)

// Pipe is what carries the messages: one goroutine calls Send, another
// Receive.
type Pipe interface {
	// Send sends value, which stays unchanged until Receive returned it
	// (Run reuses it only after that).
	Send(value []byte) error
	// Receive returns the next message's value; the receiver must not
	// keep it.
	Receive() ([]byte, error)
	// Close, which Run calls only when a Send failed, makes a blocked
	// Receive return an error.
	Close() error
}

// Config is one run's.
type Config struct {
	Rate     float64       // messages per second; 0: as fast as the pipe takes them
	Duration time.Duration // how long the sender sends
	Messages int           // or, if positive, how many it sends
	Size     int           // bytes per message value (at least 8: a stamp goes first)
	// Window bounds the messages sent and not yet received (the values
	// Run keeps alive for the pipe): a sender that gets that far ahead
	// waits, and the wait counts in the latencies. Default 1<<16.
	Window int
	// YieldAfterSend makes the sender yield its P after every send, as a
	// producer that blocks or waits between messages does; by default it
	// spins until the next message is due and yields only on waits over
	// 50 µs. A Go wake-up puts the woken receiver on the waker's P: a
	// sender that yields runs it there at once, one that spins leaves it
	// for another P to steal.
	YieldAfterSend bool
	// Warmup: messages meant to be sent before this much of the run has
	// passed are not recorded (the goroutines starting, first page faults,
	// the pipe's first allocations). Default: a tenth of Duration.
	Warmup time.Duration
}

// Result is what one run measured.
type Result struct {
	Rate     float64            // the rate asked for (0: unpaced)
	Sent     int                // messages sent (and received), warm-up included
	Elapsed  time.Duration      // from the first send to the last receive
	Achieved float64            // messages per second the sender achieved
	Latency  histogram.Snapshot // every message after the warm-up
	// Behind: the sender ended its run behind the schedule by more than
	// one percent of it: the pipe did not sustain the rate (and the
	// latencies grow with the run's length).
	Behind bool
}

// Run runs one sender and one receiver through p for c.Duration at
// c.Rate, and returns the latencies of every message.
func Run(p Pipe, c Config) (*Result, error) {
	if c.Size < 8 {
		c.Size = 8
	}
	if c.Window <= 0 {
		c.Window = 1 << 16
	}
	if c.Duration <= 0 && c.Messages <= 0 {
		return nil, errors.New("loadgen: a positive duration or message count is needed")
	}
	if c.Warmup == 0 && c.Messages <= 0 {
		c.Warmup = c.Duration / 10
	}
	window := 1 << bits.Len(uint(c.Window-1))
	slab := make([]byte, window*c.Size)
	for i := 0; i < len(slab); i += 4096 {
		slab[i] = 1 // fault the pages in now, not during the run
	}
	var interval time.Duration
	if c.Rate > 0 {
		interval = time.Duration(float64(time.Second) / c.Rate)
	}
	var (
		received atomic.Int64 // messages the receiver is done with
		total    atomic.Int64 // messages sent, once the sender is done; -1 until then
		hist     histogram.Histogram
		sendErr  error
		behind   time.Duration
		sending  time.Duration // from the start to the last send
		wg       sync.WaitGroup
		start    = time.Now()
	)
	total.Store(-1)
	value := func(i int) []byte {
		off := (i & (window - 1)) * c.Size
		return slab[off : off+c.Size : off+c.Size]
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		i := 0
		for {
			now := time.Since(start)
			if c.Messages > 0 && i >= c.Messages || c.Messages <= 0 && now >= c.Duration {
				break
			}
			at := now // unpaced: the actual send time
			if interval > 0 {
				at = time.Duration(i) * interval
				if c.Messages <= 0 && at >= c.Duration {
					break
				}
				for now < at {
					if at-now > 50*time.Microsecond {
						runtime.Gosched() // a long wait: another goroutine may use this P meanwhile
					}
					now = time.Since(start)
				}
			}
			for int64(i)-received.Load() >= int64(window) {
				runtime.Gosched() // the window is full: the wait counts, from at
			}
			v := value(i)
			binary.LittleEndian.PutUint64(v, uint64(at)+1) // 0 is the end marker
			if err := p.Send(v); err != nil {
				sendErr = err
				break
			}
			if c.YieldAfterSend {
				runtime.Gosched()
			}
			i++
		}
		sending = time.Since(start)
		if interval > 0 {
			behind = sending - time.Duration(i)*interval
		}
		total.Store(int64(i))
		if sendErr == nil {
			end := make([]byte, c.Size) // the end marker, after the count is known
			sendErr = p.Send(end)
		}
		if sendErr != nil {
			_ = p.Close() // the receiver will wait for nothing more; the send error is the one reported
		}
	}()
	var got int64
	var recvErr error
	endSeen := false
	for !endSeen || got < total.Load() {
		v, err := p.Receive()
		if err != nil {
			recvErr = err
			break
		}
		at := binary.LittleEndian.Uint64(v)
		if at == 0 {
			endSeen = true
			continue
		}
		if sent := time.Duration(at - 1); sent >= c.Warmup {
			hist.Record(time.Since(start) - sent)
		}
		got++
		received.Store(got)
	}
	elapsed := time.Since(start)
	wg.Wait()
	if sendErr != nil {
		return nil, sendErr // and the receive error it caused, if any, is not news
	}
	if recvErr != nil {
		return nil, recvErr
	}
	if n := total.Load(); got != n {
		return nil, fmt.Errorf("loadgen: received %d of %d messages", got, n)
	}
	r := &Result{Rate: c.Rate, Sent: int(got), Elapsed: elapsed}
	r.Achieved = float64(got) / sending.Seconds()
	r.Behind = interval > 0 && behind > sending/100
	hist.Snapshot(&r.Latency)
	return r, nil
}
