package natsjs

import (
	"context"
	"errors"
	"flag"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/testwait"
)

var outage = flag.Duration("outage", 2*time.Second, "how long TestForwardOutage keeps JetStream away (make stress: 10s)")

// TestForwardOutage keeps sending to a local queue while the JetStream
// server is away (shut down for -outage, then started again on its port
// and store): the queue holds the backlog (its ring is small: it spills),
// Forward retries, and once the server is back everything reaches the
// stream, once.
func TestForwardOutage(t *testing.T) {
	port := freePorts(t, 1)[0]
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()}
	start := func() *server.Server {
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("the NATS server did not start")
		}
		return s
	}
	srv := start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	js := connect(t, srv.ClientURL())
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, spillway.Options{Dir: t.TempDir(), Shards: 1, RingSize: 64, Ack: spillway.ManualAck, AckTimeout: time.Hour})
	var stats Stats
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Forward(fctx, q, js, "s", SourceName("q"), WithStats(&stats), StrictOrder()) }()
	const n = 20000
	var sent sync.WaitGroup
	var sendErr error
	sent.Go(func() {
		for i := range n {
			if err := q.Send(ctx, keyed(i%4, i/4)); err != nil {
				sendErr = err
				return
			}
		}
	})
	testwait.Within(t, time.Minute, "a fifth forwarded", func() bool { return stats.Forwarded.Load() >= n/5 })
	srv.Shutdown()
	srv.WaitForShutdown()
	away := time.NewTimer(*outage) // the outage's length: the scenario, not a synchronization
	<-away.C
	backlog := q.Stats()
	srv = start()
	sent.Wait()
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	testwait.Within(t, time.Minute, "everything forwarded", func() bool { return stats.Forwarded.Load() >= n })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward returned %v", err)
	}
	if backlog.Depth == 0 || q.Stats().Spilled == 0 || stats.Retried.Load() == 0 {
		t.Fatalf("the outage left no backlog (depth %d), nothing spilled (%d) or nothing was retried (%d): the test does not test it", backlog.Depth, q.Stats().Spilled, stats.Retried.Load())
	}
	checkStream(t, streamMessages(t, st), n)
	t.Logf("outage %v: backlog %d, %d spilled, %d publishes retried, stats %s", *outage, backlog.Depth, q.Stats().Spilled, stats.Retried.Load(), strconv.FormatUint(stats.Forwarded.Load(), 10))
}
