package natsjs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
)

// Headers the bridge sets on the messages it carries.
const (
	HeaderKey       = "Spillway-Key"        // the message's key, base64 (standard, padded)
	HeaderSentAt    = "Spillway-Sent-At"    // the publish time, RFC 3339 with nanoseconds, when known
	HeaderStreamSeq = "Spillway-Stream-Seq" // Ingest: the JetStream stream sequence the message had
)

// Source is what Forward drains: a Queue or a Subscription opened with
// ManualAck (Forward acks each delivery once JetStream has it).
type Source interface {
	ReceiveBatch(ctx context.Context, dst []spillway.Delivery) (int, error)
}

// Stats counts what a bridge did. Its fields are safe to read while the
// bridge runs.
type Stats struct {
	Forwarded    atomic.Uint64 // Forward: messages JetStream acknowledged and the source was acked for
	Retried      atomic.Uint64 // Forward: publishes sent again after a failure
	Ingested     atomic.Uint64 // Ingest: messages queued locally whose ack JetStream confirmed
	Deduplicated atomic.Uint64 // Ingest: redeliveries of messages already queued, acked without being queued again
}

// Option configures Forward and Ingest.
type Option func(*config)

type config struct {
	batch    int
	inFlight int
	name     string
	onError  func(error)
	stats    *Stats
	backoff  time.Duration
	maxWait  time.Duration
	ackWait  time.Duration
	strict   bool
	subject  func(d *spillway.Delivery) string // nil: the subject Forward was given
	logger   *slog.Logger
}

func newConfig(opts []Option) config {
	c := config{batch: 64, inFlight: 256, name: "spillway", backoff: 50 * time.Millisecond, maxWait: time.Second, ackWait: 2 * time.Second, stats: new(Stats)}
	for _, o := range opts {
		o(&c)
	}
	c.batch = max(1, min(c.batch, c.inFlight))
	return c
}

// BatchSize is how many messages a bridge takes at a time (Forward: from
// the source; Ingest: per Fetch). Default 64.
func BatchSize(n int) Option { return func(c *config) { c.batch = n } }

// MaxInFlight bounds Forward's publishes awaiting their PubAck. Default
// 256.
func MaxInFlight(n int) Option { return func(c *config) { c.inFlight = max(1, n) } }

// SourceName is the prefix of the Nats-Msg-Id Forward gives a message:
// name:shard:offset. It must name the source for as long as the stream's
// duplicate window: another source with the same name would have its
// messages taken for duplicates. Default "spillway".
func SourceName(name string) Option { return func(c *config) { c.name = name } }

// AckWait is how long Forward waits for a PubAck before it publishes the
// message again (a request lost with a server that went away is never
// answered). Default 2s.
func AckWait(d time.Duration) Option { return func(c *config) { c.ackWait = d } }

// StrictOrder makes Forward chain its publishes: each carries the
// previous one's id as Nats-Expected-Last-Msg-Id, so that the stream
// refuses a message whose predecessor it does not hold as its last one,
// and the order in the stream is the order of the source (per shard)
// through failovers, retries and restarts: a publish that failed is sent
// again before the ones after it, which the stream refused meanwhile; a
// redelivery (which the stream may hold already, and then drops without
// making it its last message) is published synchronously, and the chain
// goes on from the last message stored. Forward must then be the
// stream's only publisher. Off by default.
func StrictOrder() Option { return func(c *config) { c.strict = true } }

// OnError is told of failures a bridge retries (a publish, an ack).
func OnError(f func(error)) Option { return func(c *config) { c.onError = f } }

// Logger receives the failures a bridge retries, at Warn.
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// SubjectFunc maps each delivery to the subject Forward publishes it on
// (KeySubject is one such mapping), instead of the one subject it was
// given.
func SubjectFunc(f func(d *spillway.Delivery) string) Option {
	return func(c *config) { c.subject = f }
}

// KeySubject returns a mapping for SubjectFunc: prefix, a dot and the
// message's key as a subject token (unpadded URL-safe base64, which has no
// dot, space or wildcard), or prefix and "._" for a message without one;
// JetStream subject filters then select by key.
func KeySubject(prefix string) func(d *spillway.Delivery) string {
	return func(d *spillway.Delivery) string {
		if len(d.Key) == 0 {
			return prefix + "._"
		}
		return prefix + "." + base64.RawURLEncoding.EncodeToString(d.Key)
	}
}

// WithStats makes the bridge count into s.
func WithStats(s *Stats) Option { return func(c *config) { c.stats = s } }

func (c *config) report(err error) {
	if c.onError != nil {
		c.onError(err)
	}
	if c.logger != nil {
		c.logger.Warn("spillway bridge", slog.Any("error", err))
	}
}

// jsErrWrongLastMsgID is JetStream's error code for a publish whose
// Nats-Expected-Last-Msg-Id is not the stream's last message's id.
const jsErrWrongLastMsgID = 10070

func wrongLastMsgID(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jsErrWrongLastMsgID
}

// MsgID is the Nats-Msg-Id Forward gives the delivery d of the source
// named name.
func MsgID(name string, d *spillway.Delivery) string {
	return name + ":" + strconv.Itoa(d.Shard) + ":" + strconv.FormatUint(d.Offset, 10)
}

// natsMsg builds the JetStream message for d.
func natsMsg(subject, id string, d *spillway.Delivery) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = d.Value
	for _, h := range d.Headers {
		m.Header.Add(h.Key, string(h.Value))
	}
	if len(d.Key) > 0 {
		m.Header.Set(HeaderKey, base64.StdEncoding.EncodeToString(d.Key))
	}
	if !d.SentAt.IsZero() {
		m.Header.Set(HeaderSentAt, d.SentAt.UTC().Format(time.RFC3339Nano))
	}
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}

// pending is a publish awaiting its PubAck.
type pending struct {
	d     spillway.Delivery
	msg   *nats.Msg
	fut   jetstream.PubAckFuture
	err   error     // the publish failed before it was sent
	at    time.Time // when it was sent: its PubAck is awaited until at+AckWait
	acked bool      // published synchronously, and acknowledged (StrictOrder's redeliveries)
}

// Forward drains deliveries from from into subject on js until ctx ends,
// and then returns ctx's error (or the first error it cannot retry). Each
// batch is published asynchronously, at most MaxInFlight awaiting their
// PubAck; a delivery is acked once its PubAck came. A publish that fails
// is sent again, with the same Nats-Msg-Id, until it is acknowledged or
// ctx ends; the deliveries not acked when Forward returns come back from
// the source (their leases run out) and are published again, which the
// stream's duplicate window drops if they were stored.
func Forward(ctx context.Context, from Source, js jetstream.JetStream, subject string, opts ...Option) error {
	c := newConfig(opts)
	dst := make([]spillway.Delivery, c.batch)
	window := make([]pending, 0, c.inFlight)
	lastID := "" // StrictOrder: the id of the message published before
	for {
		// Fill the window, then settle it in order.
		for len(window) < c.inFlight {
			room := min(c.batch, c.inFlight-len(window))
			rctx, cancel := ctx, context.CancelFunc(func() {})
			if len(window) > 0 { // do not hold published messages back waiting for more
				rctx, cancel = context.WithTimeout(ctx, time.Millisecond)
			}
			n, err := from.ReceiveBatch(rctx, dst[:room])
			cancel()
			for i := range dst[:n] {
				p := pending{d: dst[i]}
				id := MsgID(c.name, &dst[i])
				subj := subject
				if c.subject != nil {
					subj = c.subject(&dst[i])
				}
				p.msg = natsMsg(subj, id, &dst[i])
				if c.strict && lastID != "" {
					p.msg.Header.Set(jetstream.ExpectedLastMsgIDHeader, lastID)
				}
				if c.strict && dst[i].Attempt > 1 {
					// A redelivery may be in the stream already (stored
					// before a crash, or its PubAck lost): the stream drops
					// it as a duplicate without making it its last message,
					// so the chain must not name it as the next one's
					// predecessor (a message of another shard naming it
					// would be stored ahead of this shard's gap). Published
					// synchronously, it is known stored or not before the
					// next one goes.
					if c.publishRedelivery(ctx, js, &p) {
						lastID = id
					}
					window = append(window, p)
					continue
				}
				lastID = id
				p.fut, p.err = js.PublishMsgAsync(p.msg)
				p.at = time.Now()
				window = append(window, p)
			}
			clear(dst[:n])
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, context.DeadlineExceeded) {
					break // nothing more now: settle what is out
				}
				return fmt.Errorf("natsjs: receiving from the source: %w", err)
			}
			if n < room {
				break
			}
		}
		for i := range window {
			if err := c.settle(ctx, js, &window[i]); err != nil {
				return err
			}
		}
		clear(window)
		window = window[:0]
	}
}

// publishRedelivery publishes p synchronously (StrictOrder, a
// redelivery) and reports whether the chain goes on from it: stored, or
// failed (then settle sends it again, and the ones after it, which name
// it, wait for it); not if the stream dropped it as a duplicate.
func (c *config) publishRedelivery(ctx context.Context, js jetstream.JetStream, p *pending) bool {
	pctx, cancel := context.WithTimeout(ctx, c.ackWait)
	ack, err := js.PublishMsg(pctx, p.msg)
	cancel()
	p.at = time.Now()
	if err != nil {
		p.err = err
		return true
	}
	p.acked = true
	return !ack.Duplicate
}

// settle waits for p's PubAck, publishing it again (synchronously, with
// the same id) after a failure, and acks its delivery.
func (c *config) settle(ctx context.Context, js jetstream.JetStream, p *pending) error {
	err := p.err
	if err == nil && !p.acked {
		t := time.NewTimer(time.Until(p.at.Add(c.ackWait)))
		select {
		case <-p.fut.Ok():
		case err = <-p.fut.Err():
		case <-t.C:
			err = fmt.Errorf("no PubAck within %v", c.ackWait)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
	for tries := 0; err != nil; tries++ {
		c.report(fmt.Errorf("natsjs: publishing %s: %w (retrying)", p.msg.Header.Get(jetstream.MsgIDHeader), err))
		c.stats.Retried.Add(1)
		if wrongLastMsgID(err) {
			// Its predecessor is stored (it was settled first), and the
			// stream ends elsewhere: with messages a Forward before this
			// one published (a crash, a restart), which come back from
			// the source in another interleaving of its shards. The chain
			// starts again here: published plainly, the message is
			// dropped if it is among them, stored last if not, after its
			// key's predecessors either way.
			p.msg.Header.Del(jetstream.ExpectedLastMsgIDHeader)
		}
		if tries > 0 { // the first retry at once: the failure was likely the whole window's, and is over
			if err := pause(ctx, c.backoff); err != nil {
				return err
			}
		}
		pctx, cancel := context.WithTimeout(ctx, c.ackWait)
		_, err = js.PublishMsg(pctx, p.msg)
		cancel()
	}
	if err := p.d.Ack(); err != nil {
		// The lease ran out (the source redelivers it; the stream drops
		// the copy) or the source closed: either way it is in the stream.
		c.report(fmt.Errorf("natsjs: acking %s at the source: %w", p.msg.Header.Get(jetstream.MsgIDHeader), err))
	}
	c.stats.Forwarded.Add(1)
	return nil
}
