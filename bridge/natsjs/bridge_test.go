package natsjs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/testwait"
)

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		runKillChild() // the child of TestForwardKill9 or TestIngestKill9; never returns
	}
	goleak.VerifyTestMain(m)
}

// startJetStream runs a JetStream server in the process, on a loopback
// port it picks, storing in a temporary directory, and returns a client
// for it; all of it stops when the test ends.
func startJetStream(t testing.TB) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
	})
	return js, nc
}

func createStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// keyed is message i of key k.
func keyed(k, i int) spillway.Message {
	return spillway.Message{Key: []byte("key-" + strconv.Itoa(k)), Value: fmt.Appendf(nil, "%d:%d", k, i),
		Headers: []spillway.Header{{Key: "trace", Value: []byte("t" + strconv.Itoa(i))}}}
}

// streamMessages reads every message of st, in stream order.
func streamMessages(t *testing.T, st jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// runForward runs Forward until the test cancels it, and returns its end.
func runForward(ctx context.Context, q *spillway.Queue, js jetstream.JetStream, stats *Stats) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Forward(ctx, q, js, "s", SourceName("orders"), WithStats(stats), BatchSize(32)) }()
	return done
}

// TestForwardExactlyOnce forwards keyed messages from a Persistent
// ManualAck queue, stops the bridge in the middle (deliveries published
// and not acked locally), reopens the queue and forwards the rest: the
// stream holds every message once (the duplicate window drops what was
// published twice), each with its key, headers and publish id, and each
// key's messages in order.
func TestForwardExactlyOnce(t *testing.T) {
	js, _ := startJetStream(t)
	st := createStream(t, js)
	dir := t.TempDir()
	opts := spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 2, Ack: spillway.ManualAck, AckTimeout: time.Hour}
	q, err := spillway.OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	const keys, per = 8, 500
	ctx := context.Background()
	for i := range per {
		for k := range keys {
			if err := q.Send(ctx, keyed(k, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var stats Stats
	fctx, cancel := context.WithCancel(ctx)
	done := runForward(fctx, q, js, &stats)
	testwait.For(t, "half the messages forwarded", func() bool { return stats.Forwarded.Load() >= keys*per/2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward returned %v, want context.Canceled", err)
	}
	if err := q.Close(); err != nil { // what was published and not acked comes back
		t.Fatal(err)
	}
	q = openQueue(t, opts)
	fctx, cancel = context.WithCancel(ctx)
	defer cancel()
	var stats2 Stats
	done = runForward(fctx, q, js, &stats2)
	testwait.For(t, "the queue drained", func() bool { return q.Stats().InFlight == 0 && q.Stats().Depth == 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward returned %v, want context.Canceled", err)
	}
	msgs := streamMessages(t, st)
	checkStream(t, msgs, keys*per)
	for _, m := range msgs { // the source's ids, the headers carried
		var k, i int
		if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &k, &i); err != nil {
			t.Fatal(err)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); !strings.HasPrefix(id, "orders:") || m.Header.Get("trace") != "t"+strconv.Itoa(i) {
			t.Fatalf("message %s: id %q, trace %q", m.Data, id, m.Header.Get("trace"))
		}
	}
}

// TestIngest feeds a local queue whose ring is small, with a spill
// directory, from a durable consumer, while nobody receives locally: the
// backlog spills; then every stream message is received once, with its
// key, headers and stream sequence, and the consumer has nothing left
// unacked.
func TestIngest(t *testing.T) {
	js, _ := startJetStream(t)
	st := createStream(t, js)
	ctx := context.Background()
	const n = 3000
	for i := range n {
		d := spillway.Delivery{Message: keyed(i%4, i)}
		if _, err := js.PublishMsg(ctx, natsMsg("s", "m"+strconv.Itoa(i), &d)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "local", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, spillway.Options{Dir: t.TempDir(), Shards: 1, RingSize: 64})
	var stats Stats
	ictx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ierr error
	wg.Go(func() {
		ierr = Ingest(ictx, cons, q, WithStats(&stats), BatchSize(100), OnError(func(err error) { t.Log(err) }))
	})
	testwait.For(t, "everything ingested", func() bool { return stats.Ingested.Load() == n })
	cancel()
	wg.Wait()
	if !errors.Is(ierr, context.Canceled) {
		t.Fatalf("Ingest returned %v, want context.Canceled", ierr)
	}
	if q.Stats().Spilled == 0 {
		t.Fatal("the local queue did not spill: the test does not cover a backlog")
	}
	seen := map[string]bool{}
	for range n {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var k, i int
		if _, err := fmt.Sscanf(string(d.Value), "%d:%d", &k, &i); err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		if seen[h[HeaderStreamSeq]] || string(d.Key) != "key-"+strconv.Itoa(k) || h["trace"] != "t"+strconv.Itoa(i) || h[HeaderStreamSeq] != strconv.Itoa(i+1) {
			t.Fatalf("message %q: key %q, headers %v", d.Value, d.Key, h)
		}
		seen[h[HeaderStreamSeq]] = true
	}
	if _, err := q.TryReceive(); !errors.Is(err, spillway.ErrEmpty) {
		t.Fatalf("more than the stream held: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Stream != n {
		t.Fatalf("the consumer: %d unacked, ack floor %d; want 0 and %d", info.NumAckPending, info.AckFloor.Stream, n)
	}
}

// flakyConsumer hands out messages whose first DoubleAck fails for every
// tenth stream sequence, as an ack lost on the way would: JetStream
// delivers them again once their AckWait is over.
type flakyConsumer struct {
	jetstream.Consumer
	mu     sync.Mutex
	failed map[uint64]bool
}

type flakyBatch struct {
	msgs chan jetstream.Msg
	in   jetstream.MessageBatch
}

func (b *flakyBatch) Messages() <-chan jetstream.Msg { return b.msgs }
func (b *flakyBatch) Error() error                   { return b.in.Error() }

type flakyMsg struct {
	jetstream.Msg
	c *flakyConsumer
}

func (m flakyMsg) DoubleAck(ctx context.Context) error {
	md, err := m.Metadata()
	if err != nil {
		return err
	}
	m.c.mu.Lock()
	fail := md.Sequence.Stream%10 == 0 && !m.c.failed[md.Sequence.Stream]
	if fail {
		m.c.failed[md.Sequence.Stream] = true
	}
	m.c.mu.Unlock()
	if fail {
		return errors.New("an ack lost on the way (test)")
	}
	return m.Msg.DoubleAck(ctx)
}

func (c *flakyConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	in, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	b := &flakyBatch{msgs: make(chan jetstream.Msg), in: in}
	go func() {
		defer close(b.msgs)
		for m := range in.Messages() {
			b.msgs <- flakyMsg{Msg: m, c: c}
		}
	}()
	return b, nil
}

// TestIngestDeduplicates: messages whose ack JetStream never got come
// again; Ingest acks them without queueing them twice.
func TestIngestDeduplicates(t *testing.T) {
	js, _ := startJetStream(t)
	st := createStream(t, js)
	ctx := context.Background()
	const n = 200
	for i := range n {
		d := spillway.Delivery{Message: keyed(0, i)}
		if _, err := js.PublishMsg(ctx, natsMsg("s", "m"+strconv.Itoa(i), &d)); err != nil {
			t.Fatal(err)
		}
	}
	inner, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "local", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cons := &flakyConsumer{Consumer: inner, failed: map[uint64]bool{}}
	q := openQueue(t, spillway.Options{Shards: 1})
	var stats Stats
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Ingest(ictx, cons, q, WithStats(&stats), BatchSize(50)) }()
	testwait.Within(t, time.Minute, "every ack confirmed", func() bool {
		return stats.Ingested.Load() == n-n/10 && stats.Deduplicated.Load() == n/10
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Ingest returned %v", err)
	}
	seen := map[string]bool{}
	for {
		d, err := q.TryReceive()
		if errors.Is(err, spillway.ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(d.Value)] {
			t.Fatalf("%s queued twice", d.Value)
		}
		seen[string(d.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d messages queued, %d in the stream", len(seen), n)
	}
	info, err := inner.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Stream != n {
		t.Fatalf("the consumer: %d unacked, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
	}
}

// TestForwardKeySubject: with KeySubject, each key has a subject of its
// own, and a subject filter selects one key's messages.
func TestForwardKeySubject(t *testing.T) {
	js, _ := startJetStream(t)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "K", Subjects: []string{"k.>"}})
	if err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, spillway.Options{Shards: 1, Ack: spillway.ManualAck})
	for i := range 30 {
		if err := q.Send(ctx, keyed(i%3, i/3)); err != nil {
			t.Fatal(err)
		}
	}
	var stats Stats
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Forward(fctx, q, js, "unused", SubjectFunc(KeySubject("k")), WithStats(&stats)) }()
	testwait.For(t, "everything forwarded", func() bool { return stats.Forwarded.Load() == 30 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	d := spillway.Delivery{Message: keyed(1, 0)}
	subject := KeySubject("k")(&d)
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: subject, AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if m.Subject() != subject || !strings.HasPrefix(string(m.Data()), "1:") {
			t.Fatalf("%s on %s through the filter %s", m.Data(), m.Subject(), subject)
		}
		got++
	}
	if got != 10 {
		t.Fatalf("%d messages of key 1 through its subject, want 10", got)
	}
}
