package loadgen

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chanPipe is a buffered channel of values, whose receiver may take a
// while over each.
type chanPipe struct {
	c      chan []byte
	closed chan struct{}
	delay  time.Duration // the receiver's time per message
	fail   int           // Send fails at this message (0: never)
	n      int
}

func (p *chanPipe) Send(v []byte) error {
	if p.n++; p.n == p.fail {
		return errors.New("send failed")
	}
	p.c <- v
	return nil
}

func (p *chanPipe) Receive() ([]byte, error) {
	select {
	case v := <-p.c:
		if p.delay > 0 {
			for deadline := time.Now().Add(p.delay); time.Now().Before(deadline); {
				runtime.Gosched() // the receiver's work
			}
		}
		return v, nil
	case <-p.closed:
		return nil, errors.New("closed")
	}
}

func (p *chanPipe) Close() error { close(p.closed); return nil }

func newChanPipe() *chanPipe {
	return &chanPipe{c: make(chan []byte, 1024), closed: make(chan struct{})}
}

// At a rate the pipe sustains the sender keeps to the schedule, never
// ahead of it, and every message meant for after the warm-up is recorded:
// at 20 000/s one every 50 µs, so all but the first 400 of 200 ms.
// The same whether the sender spins between messages or yields after each.
func TestRunPaced(t *testing.T) {
	for _, yield := range []bool{false, true} {
		r, err := Run(newChanPipe(), Config{Rate: 20000, Duration: 200 * time.Millisecond, Size: 64, YieldAfterSend: yield})
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent > 4000 || r.Sent < 1000 {
			t.Fatalf("yield %v: sent %d in 200 ms at 20 000/s: want at most 4000, and not far behind", yield, r.Sent)
		}
		if got := r.Latency.Count(); got != uint64(r.Sent-400) {
			t.Fatalf("yield %v: recorded %d of %d, want all but the 400 of the warm-up", yield, got, r.Sent)
		}
		if r.Achieved > 21000 {
			t.Fatalf("yield %v: achieved %.0f msgs/s: ahead of the schedule", yield, r.Achieved)
		}
	}
}

// A receiver slower than the rate: the sender keeps its schedule until the
// window fills, and the latencies count from the schedule, growing through
// the run (coordinated omission corrected): the largest is far above the
// receiver's time per message, and the run is reported behind.
func TestRunCoordinatedOmission(t *testing.T) {
	p := newChanPipe()
	p.delay = 100 * time.Microsecond // 10000 msgs/s at most
	r, err := Run(p, Config{Rate: 40000, Duration: 100 * time.Millisecond, Size: 8, Window: 64})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Behind {
		t.Fatalf("not behind at 4x the receiver's rate: %+v", r)
	}
	if max := r.Latency.Max(); max < 20*time.Millisecond {
		t.Fatalf("max latency %v: the schedule's delay is not counted", max)
	}
}

// A failing Send ends the run with its error; the receiver is not left
// waiting.
func TestRunSendError(t *testing.T) {
	p := newChanPipe()
	p.fail = 100
	if _, err := Run(p, Config{Duration: time.Second, Size: 8}); err == nil || err.Error() != "send failed" {
		t.Fatalf("err %v, want the send's", err)
	}
}
