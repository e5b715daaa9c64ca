package natsjs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/testwait"
)

// killChildEnv carries the forwarding child's queue directory and the
// server's URL.
const killChildEnv = "NATSJS_KILL_CHILD"

func killQueueOptions(dir string) spillway.Options {
	return spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 2, Ack: spillway.ManualAck, AckTimeout: time.Hour}
}

// ingestQueueOptions are the ingesting side's queue in TestIngestKill9.
func ingestQueueOptions(dir string) spillway.Options {
	return spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 2, Sync: spillway.SyncAlways}
}

// runKillChild is the child of TestForwardKill9 ("forward": it forwards
// the queue in its directory into the stream) or of TestIngestKill9
// ("ingest": it ingests the stream's consumer into the queue in its
// directory), until it is killed.
func runKillChild() {
	f := strings.Fields(os.Getenv(killChildEnv))
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(2)
	}
	opts := killQueueOptions(f[1])
	if f[0] == "ingest" {
		opts = ingestQueueOptions(f[1])
	}
	q, err := spillway.OpenQueue(opts)
	if err != nil {
		fail(err)
	}
	nc, err := nats.Connect(f[2])
	if err != nil {
		fail(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if f[0] == "ingest" {
		cons, err := js.Consumer(ctx, "S", "local")
		if err != nil {
			fail(err)
		}
		fail(Ingest(ctx, cons, q, BatchSize(50)))
	}
	fail(Forward(ctx, q, js, "s", SourceName("q"), StrictOrder()))
}

// killChild starts this test binary as runKillChild in role, on the queue
// in dir, connected to url.
func killChild(t *testing.T, role, dir, url string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+role+" "+dir+" "+url)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// kill sends cmd SIGKILL and reaps it.
func kill(t *testing.T, cmd *exec.Cmd) {
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) {
		t.Fatalf("the child ended with %v, want a SIGKILL", err)
	}
}

// TestForwardKill9 kills, with SIGKILL, a process forwarding a Persistent
// queue into a stream, once a third of the messages are in the stream;
// then forwards the rest from this process: the stream holds every
// message once, each key in order. (A key's order across the kill once
// broke about one run in ten: the reopened side's chain named a
// redelivery the stream dropped as a duplicate as the next message's
// predecessor; StrictOrder now publishes redeliveries synchronously.)
func TestForwardKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	js, _ := startJetStream(t)
	st := createStream(t, js)
	dir := t.TempDir()
	q, err := spillway.OpenQueue(killQueueOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	const keys, per = 8, 2000
	ctx := context.Background()
	for i := range per {
		for k := range keys {
			if err := q.Send(ctx, keyed(k, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cmd := killChild(t, "forward", dir, js.Conn().ConnectedUrl())
	testwait.Within(t, time.Minute, "a third in the stream", func() bool {
		info, err = st.Info(ctx)
		return err == nil && info.State.Msgs >= keys*per/3
	})
	kill(t, cmd)
	if info, err = st.Info(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("the stream's last sequence when the child was killed: %d", info.State.LastSeq)

	q = openQueue(t, killQueueOptions(dir))
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Forward(fctx, q, js, "s", SourceName("q"), StrictOrder()) }()
	testwait.Within(t, time.Minute, "the queue drained", func() bool {
		st := q.Stats()
		return st.Depth == 0 && st.InFlight == 0
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward returned %v", err)
	}
	checkStream(t, streamMessages(t, st), keys*per)
}

// TestIngestKill9 kills, with SIGKILL, a process ingesting a stream's
// consumer (AckWait short, so that what it had not acked comes again
// soon) into a Persistent queue, three times at random moments; then
// ingests the rest from this process: the queue holds every stream
// message exactly once (the queue's duplicate window, kept across the
// kills, drops what JetStream delivers again after a Send whose ack the
// kill lost), and the consumer has nothing unacked.
func TestIngestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	js, _ := startJetStream(t)
	st := createStream(t, js)
	ctx := context.Background()
	const n = 6000
	for i := range n {
		d := spillway.Delivery{Message: keyed(i%4, i)}
		if _, err := js.PublishMsgAsync(natsMsg("s", "m"+strconv.Itoa(i), &d)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		t.Fatal("publishing the stream timed out")
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "local", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := js.Conn().ConnectedUrl()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 3 {
		floor := uint64(0)
		if info, err := cons.Info(ctx); err == nil {
			floor = info.AckFloor.Stream
		}
		cmd := killChild(t, "ingest", dir, url)
		// Kill it a random number of acks on: a Send whose ack the kill
		// loses is the case that matters.
		more := uint64(100 + rng.IntN(n/6))
		testwait.Within(t, time.Minute, fmt.Sprintf("round %d: %d more acked", round, more), func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.AckFloor.Stream >= floor+more
		})
		kill(t, cmd)
	}
	q := openQueue(t, ingestQueueOptions(dir))
	var stats Stats
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Ingest(ictx, cons, q, WithStats(&stats), BatchSize(50)) }()
	testwait.Within(t, time.Minute, "the consumer acked", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream == n && info.NumAckPending == 0
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
		var seq string
		for _, h := range d.Headers {
			if h.Key == HeaderStreamSeq {
				seq = string(h.Value)
			}
		}
		if seen[seq] {
			t.Fatalf("stream sequence %s queued twice", seq)
		}
		seen[seq] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d stream messages in the queue", len(seen), n)
	}
	t.Logf("duplicates this process's queue dropped (the children's dropped theirs): %d", q.Stats().Deduplicated)
}
