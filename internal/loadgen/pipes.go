package loadgen

import (
	"context"
	"errors"

	"github.com/spillway-io/spillway"
)

// QueuePipe carries values through a Spillway Queue, one Send and one
// Receive per message.
type QueuePipe struct {
	Q *spillway.Queue
}

func (p QueuePipe) Send(v []byte) error {
	return p.Q.Send(context.Background(), spillway.Message{Value: v})
}

func (p QueuePipe) Receive() ([]byte, error) {
	d, err := p.Q.Receive(context.Background())
	return d.Value, err
}

// Close closes the queue (a second Close, the caller's, reports
// ErrClosed).
func (p QueuePipe) Close() error { return p.Q.Close() }

// ChanPipe carries values through a buffered channel.
type ChanPipe struct {
	c      chan []byte
	closed chan struct{}
}

// NewChanPipe returns a ChanPipe whose channel buffers capacity values.
func NewChanPipe(capacity int) *ChanPipe {
	return &ChanPipe{c: make(chan []byte, capacity), closed: make(chan struct{})}
}

func (p *ChanPipe) Send(v []byte) error {
	select {
	case p.c <- v:
		return nil
	case <-p.closed:
		return errClosed
	}
}

func (p *ChanPipe) Receive() ([]byte, error) {
	select {
	case v := <-p.c:
		return v, nil
	case <-p.closed:
		return nil, errClosed
	}
}

// Close makes blocked calls return; it may be called once.
func (p *ChanPipe) Close() error {
	close(p.closed)
	return nil
}

var errClosed = errors.New("loadgen: pipe closed")
