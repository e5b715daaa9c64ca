package natsjs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
)

// Ingest fetches messages from a JetStream consumer into to until ctx
// ends, and then returns ctx's error (or the first error it cannot
// retry). Each message is sent to the local queue (waiting as the queue's
// overflow policy says: with a spill directory, a backlog goes to disk)
// and acked to JetStream only after Send returned: for a Persistent queue,
// once it is as durable as the queue's SyncPolicy says. The ack is
// confirmed (AckSync); a message whose ack could not be confirmed and
// that JetStream delivers again is acked without being queued twice
// (Stats.Deduplicated): exactly-once into the queue while this process
// lives. Each message is sent with an ID of its stream and sequence
// (Message.ID, "natsjs/<stream>/<sequence>"): a Persistent queue keeps
// its duplicate window across a crash, so that a message JetStream
// delivers again after a crash between Send and the ack is not queued
// twice either, as long as the consumer's AckWait (and the restart) is
// shorter than the queue's DedupWindow: exactly-once across crashes.
//
// The key comes back from HeaderKey, the headers as they were (each
// value of a repeated header in order), and the stream sequence in
// HeaderStreamSeq.
func Ingest(ctx context.Context, from jetstream.Consumer, to *spillway.Queue, opts ...Option) error {
	c := newConfig(opts)
	unconfirmed := map[uint64]bool{} // stream sequences queued whose ack was not confirmed
	for {
		if err := c.fetch(ctx, from, to, unconfirmed); err != nil {
			return err
		}
	}
}

// fetch takes one batch from the consumer (waiting at most maxWait for
// it) into the queue.
func (c *config) fetch(ctx context.Context, from jetstream.Consumer, to *spillway.Queue, unconfirmed map[uint64]bool) error {
	fctx, cancel := context.WithTimeout(ctx, c.maxWait)
	defer cancel()
	batch, err := from.Fetch(c.batch, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.report(fmt.Errorf("natsjs: fetching: %w (retrying)", err))
		return pause(ctx, c.backoff)
	}
	for msg := range batch.Messages() {
		if err := c.ingest(ctx, msg, to, unconfirmed); err != nil {
			return err
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.report(fmt.Errorf("natsjs: fetching: %w", err))
	}
	return ctx.Err()
}

// ingest queues one message, unless it is a redelivery of one queued
// already, and acks it.
func (c *config) ingest(ctx context.Context, msg jetstream.Msg, to *spillway.Queue, unconfirmed map[uint64]bool) error {
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("natsjs: a message without JetStream metadata: %w", err)
	}
	seq := md.Sequence.Stream
	dup := unconfirmed[seq]
	if !dup {
		m, err := localMessage(msg, seq)
		if err != nil {
			c.report(err)
			return msg.Term() // a message this bridge cannot read will not read better later
		}
		m.ID = "natsjs/" + md.Stream + "/" + strconv.FormatUint(seq, 10)
		if err := to.Send(ctx, m); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("natsjs: sending stream sequence %d to the queue: %w", seq, err)
		}
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = msg.DoubleAck(actx)
	cancel()
	if err != nil {
		// Queued, and JetStream may not know: it delivers it again, and
		// then it is acked without being queued twice.
		unconfirmed[seq] = true
		c.report(fmt.Errorf("natsjs: acking stream sequence %d: %w", seq, err))
		return nil
	}
	delete(unconfirmed, seq)
	if dup {
		c.stats.Deduplicated.Add(1)
	} else {
		c.stats.Ingested.Add(1)
	}
	return nil
}

// localMessage converts a JetStream message into the Spillway message
// Ingest queues.
func localMessage(msg jetstream.Msg, seq uint64) (spillway.Message, error) {
	m := spillway.Message{Value: msg.Data()}
	for k, vs := range msg.Headers() {
		switch k {
		case HeaderKey:
			key, err := base64.StdEncoding.DecodeString(vs[0])
			if err != nil {
				return m, fmt.Errorf("natsjs: stream sequence %d: header %s is not base64: %w", seq, HeaderKey, err)
			}
			m.Key = key
			continue
		case jetstream.MsgIDHeader, HeaderStreamSeq:
			continue
		}
		for _, v := range vs {
			m.Headers = append(m.Headers, spillway.Header{Key: k, Value: []byte(v)})
		}
	}
	m.Headers = append(m.Headers, spillway.Header{Key: HeaderStreamSeq, Value: strconv.AppendUint(nil, seq, 10)})
	if len(msg.Headers().Values(HeaderSentAt)) == 0 {
		if md, err := msg.Metadata(); err == nil && !md.Timestamp.IsZero() {
			// Published to JetStream directly: its stream timestamp.
			m.Headers = append(m.Headers, spillway.Header{Key: HeaderSentAt, Value: md.Timestamp.UTC().AppendFormat(nil, time.RFC3339Nano)})
		}
	}
	return m, nil
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
