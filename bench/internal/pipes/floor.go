package pipes

import (
	"errors"
	"sync/atomic"

	"github.com/spillway-io/spillway/ring"
)

// FloorPipe is the floor of the tail-latency table: a bare SPSC ring whose
// receiver polls without ever parking or yielding, so that it holds a core
// for itself. No queue can answer sooner on the same machine; it is no
// peer (a receiver that never sleeps burns its core while idle).
type FloorPipe struct {
	r      *ring.SPSC[[]byte]
	closed atomic.Bool
}

// NewFloorPipe returns a FloorPipe over a ring of capacity slots.
func NewFloorPipe(capacity int) *FloorPipe { return &FloorPipe{r: ring.NewSPSC[[]byte](capacity)} }

// Send pushes v, polling while the ring is full.
func (p *FloorPipe) Send(v []byte) error {
	for !p.r.TryPush(v) {
		if p.closed.Load() {
			return errFloorClosed
		}
	}
	return nil
}

// Receive polls until a value arrives.
func (p *FloorPipe) Receive() ([]byte, error) {
	for {
		if v, ok := p.r.TryPop(); ok {
			return v, nil
		}
		if p.closed.Load() {
			return nil, errFloorClosed
		}
	}
}

// Close makes blocked calls return.
func (p *FloorPipe) Close() error {
	p.closed.Store(true)
	return nil
}

var errFloorClosed = errors.New("pipes: floor pipe closed")
