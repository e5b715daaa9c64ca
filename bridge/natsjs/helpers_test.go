package natsjs

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
)

// connect returns a JetStream client of the servers at urls that
// reconnects without end (servers go away in these tests); it closes
// when the test ends.
func connect(t testing.TB, urls string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// openQueue opens a Queue that closes, checked, when the test ends.
func openQueue(t testing.TB, opts spillway.Options) *spillway.Queue {
	t.Helper()
	q, err := spillway.OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil && !errors.Is(err, spillway.ErrClosed) {
			t.Error(err)
		}
	})
	return q
}

// checkStream checks that msgs, a stream's messages in order, are n keyed
// messages (see keyed), each once by its Nats-Msg-Id, each key's in
// order (a key out of order fails, with the messages around it logged).
func checkStream(t testing.TB, msgs []*jetstream.RawStreamMsg, n int) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("the stream holds %d messages, %d were sent", len(msgs), n)
	}
	ids := map[string]bool{}
	next := map[string]int{}
	for j, m := range msgs {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if ids[id] {
			t.Fatalf("message id %q twice", id)
		}
		ids[id] = true
		var k, i int
		if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &k, &i); err != nil {
			t.Fatal(err)
		}
		key := m.Header.Get(HeaderKey)
		if i != next[key] {
			for x := max(0, j-8); x < min(len(msgs), j+8); x++ {
				t.Logf("  seq %d: %s %s", x+1, msgs[x].Header.Get(jetstream.MsgIDHeader), msgs[x].Data)
			}
			t.Fatalf("key %s: message %d where %d comes next (the stream around it above)", key, i, next[key])
		}
		next[key] = i + 1
	}
}
