package pipes

import (
	"errors"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Pipe is a loadgen.Pipe over core NATS (at most once: no JetStream).
type Pipe struct {
	srv      *server.Server
	pub, sub *nats.Conn
	s        *nats.Subscription
}

const subject = "latency"

// Start starts a server and connects both sides. The subscription has no
// pending limit: core NATS drops a slow consumer's messages past it, and
// a dropped message would leave the receiver waiting.
func Start() (*Pipe, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("pipes: the server did not start")
	}
	p := &Pipe{srv: srv}
	if p.sub, err = nats.Connect(srv.ClientURL()); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	if p.s, err = p.sub.SubscribeSync(subject); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	if err = p.s.SetPendingLimits(-1, -1); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	if err = p.sub.Flush(); err != nil { // the server has the subscription
		return nil, errors.Join(err, p.Close())
	}
	if p.pub, err = nats.Connect(srv.ClientURL()); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return p, nil
}

// Send publishes v (nats.go copies it into its write buffer).
func (p *Pipe) Send(v []byte) error { return p.pub.Publish(subject, v) }

// Receive returns the next message's data.
func (p *Pipe) Receive() ([]byte, error) {
	m, err := p.s.NextMsg(time.Minute)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// Close closes both connections and shuts the server down.
func (p *Pipe) Close() error {
	if p.pub != nil {
		p.pub.Close()
	}
	if p.sub != nil {
		p.sub.Close()
	}
	p.srv.Shutdown()
	p.srv.WaitForShutdown()
	return nil
}
