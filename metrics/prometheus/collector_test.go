package prometheus

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/spillway-io/spillway"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closeOK closes c, failing t if that fails.
func closeOK(t *testing.T, c interface{ Close() error }) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// fixture is a Queue and a Topic in a known state, under a ManualClock:
// the queue got three messages, delivered two 1 ms after they were sent
// (one acked 2 ms later, one in flight) and holds one; the topic published
// two, its subscription "a" received both, "b" none.
func fixture(t *testing.T) (*spillway.Queue, *spillway.Topic) {
	t.Helper()
	clock := spillway.NewManualClock(time.Unix(1e9, 0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := spillway.OpenQueue(spillway.Options{Shards: 1, Clock: clock, LatencySampling: 1, Ack: spillway.ManualAck})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, q) })
	for range 3 {
		if err := q.Send(ctx, spillway.Message{Value: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Millisecond)
	var ds [2]spillway.Delivery
	for i := range ds {
		if ds[i], err = q.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Millisecond)
	if err := ds[0].Ack(); err != nil {
		t.Fatal(err)
	}
	top, err := spillway.OpenTopic(spillway.Options{Shards: 1, Clock: clock, LatencySampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, top) })
	a, err := top.Subscribe("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := top.Subscribe("b"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := top.Publish(ctx, spillway.Message{Value: []byte("t")}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Millisecond)
	for range 2 {
		if _, err := a.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return q, top
}

// Every metric the collector exports passes the Prometheus linter.
func TestCollectorLint(t *testing.T) {
	q, top := fixture(t)
	c := NewCollector(Queue("orders", q), Topic("events", top)).Shards(true)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(c); n < 50 {
		t.Fatalf("%d series, want every scope's", n)
	}
	// One shard each: the topic's shard saw both messages, its
	// subscriptions' parts add up to b's backlog of two.
	if n := testutil.CollectAndCount(c, "spillway_topic_shard_messages_sent_total", "spillway_queue_shard_depth_messages", "spillway_subscription_shard_depth_messages"); n != 4 {
		t.Fatalf("%d shard series, want 1 + 1 + 2", n)
	}
	const want = `
# HELP spillway_topic_shard_depth_messages Messages waiting in the shard.
# TYPE spillway_topic_shard_depth_messages gauge
spillway_topic_shard_depth_messages{shard="0",topic="events"} 2
# HELP spillway_topic_shard_messages_sent_total Messages that went to the shard.
# TYPE spillway_topic_shard_messages_sent_total counter
spillway_topic_shard_messages_sent_total{shard="0",topic="events"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "spillway_topic_shard_depth_messages", "spillway_topic_shard_messages_sent_total"); err != nil {
		t.Fatal(err)
	}
}

// The exported values are the fixture's, in the text format.
func TestCollectorCompare(t *testing.T) {
	q, top := fixture(t)
	c := NewCollector(Queue("orders", q), Topic("events", top))
	const want = `
# HELP spillway_queue_messages_sent_total Messages accepted (Send, SendBatch, TrySend; for a topic, Publish).
# TYPE spillway_queue_messages_sent_total counter
spillway_queue_messages_sent_total{queue="orders"} 3
# HELP spillway_queue_messages_acked_total ManualAck deliveries acked.
# TYPE spillway_queue_messages_acked_total counter
spillway_queue_messages_acked_total{queue="orders"} 1
# HELP spillway_queue_depth_messages Messages waiting to be delivered (for a subscription: its lag in messages).
# TYPE spillway_queue_depth_messages gauge
spillway_queue_depth_messages{queue="orders"} 1
# HELP spillway_queue_in_flight_messages ManualAck deliveries not yet settled.
# TYPE spillway_queue_in_flight_messages gauge
spillway_queue_in_flight_messages{queue="orders"} 1
# HELP spillway_queue_oldest_message_age_seconds Age of the oldest timed message waiting for its first delivery (for a subscription: its lag in time).
# TYPE spillway_queue_oldest_message_age_seconds gauge
spillway_queue_oldest_message_age_seconds{queue="orders"} 0.004
# HELP spillway_queue_ack_latency_seconds Time from first delivery to Ack of the timed ManualAck deliveries.
# TYPE spillway_queue_ack_latency_seconds histogram
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="1e-06"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="2.5e-06"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="5e-06"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="1e-05"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="2.5e-05"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="5e-05"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.0001"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.00025"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.0005"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.001"} 0
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.0025"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.005"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.01"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.025"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.05"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.1"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.25"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="0.5"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="1"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="2.5"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="5"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="10"} 1
spillway_queue_ack_latency_seconds_bucket{queue="orders",le="+Inf"} 1
spillway_queue_ack_latency_seconds_sum{queue="orders"} 0.002
spillway_queue_ack_latency_seconds_count{queue="orders"} 1
# HELP spillway_topic_messages_sent_total Messages accepted (Send, SendBatch, TrySend; for a topic, Publish).
# TYPE spillway_topic_messages_sent_total counter
spillway_topic_messages_sent_total{topic="events"} 2
# HELP spillway_subscription_depth_messages Messages waiting to be delivered (for a subscription: its lag in messages).
# TYPE spillway_subscription_depth_messages gauge
spillway_subscription_depth_messages{subscription="a",topic="events"} 0
spillway_subscription_depth_messages{subscription="b",topic="events"} 2
# HELP spillway_subscription_oldest_message_age_seconds Age of the oldest timed message waiting for its first delivery (for a subscription: its lag in time).
# TYPE spillway_subscription_oldest_message_age_seconds gauge
spillway_subscription_oldest_message_age_seconds{subscription="a",topic="events"} 0
spillway_subscription_oldest_message_age_seconds{subscription="b",topic="events"} 0.001
# HELP spillway_subscription_receivers Receivers attached (open Subscription handles).
# TYPE spillway_subscription_receivers gauge
spillway_subscription_receivers{subscription="a",topic="events"} 1
spillway_subscription_receivers{subscription="b",topic="events"} 1
`
	names := []string{
		"spillway_queue_messages_sent_total", "spillway_queue_messages_acked_total", "spillway_queue_depth_messages",
		"spillway_queue_in_flight_messages", "spillway_queue_oldest_message_age_seconds", "spillway_queue_ack_latency_seconds",
		"spillway_topic_messages_sent_total", "spillway_subscription_depth_messages",
		"spillway_subscription_oldest_message_age_seconds", "spillway_subscription_receivers",
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// A real scrape over HTTP, parsed back: the queue's wait histogram and a
// subscription's counter arrive with their values.
func TestCollectorScrape(t *testing.T) {
	q, top := fixture(t)
	reg := prom.NewPedanticRegistry()
	if err := reg.Register(NewCollector(Queue("orders", q), Topic("events", top))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	wait := families["spillway_queue_wait_seconds"]
	if wait == nil || len(wait.Metric) != 1 {
		t.Fatalf("no queue wait histogram in\n%s", body)
	}
	h := wait.Metric[0].GetHistogram()
	if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-0.002) > 1e-12 {
		t.Fatalf("queue wait: count %d sum %g, want 2 and 0.002", h.GetSampleCount(), h.GetSampleSum())
	}
	delivered := families["spillway_subscription_messages_delivered_total"]
	if delivered == nil || len(delivered.Metric) != 2 {
		t.Fatalf("subscription deliveries: %v", delivered)
	}
	for _, m := range delivered.Metric {
		want := map[string]float64{"a": 2, "b": 0}
		var sub string
		for _, l := range m.Label {
			if l.GetName() == "subscription" {
				sub = l.GetValue()
			}
		}
		if got := m.GetCounter().GetValue(); got != want[sub] {
			t.Fatalf("subscription %q delivered %g, want %g", sub, got, want[sub])
		}
	}
}

// The native buckets place each value within the schema's resolution, and
// the classic buckets count it under the first bound at or above it.
func TestHistogramBuckets(t *testing.T) {
	q, top := fixture(t)
	reg := prom.NewPedanticRegistry()
	if err := reg.Register(NewCollector(Queue("orders", q), Topic("events", top))); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "spillway_queue_wait_seconds" {
			continue
		}
		h := f.Metric[0].GetHistogram()
		// Two waits of 1 ms: one native bucket, (2^((i-1)/64), 2^(i/64)],
		// holding both, and 1 ms within 1.1% of its bounds.
		if h.GetSchema() != nativeSchema || len(h.PositiveSpan) != 1 || h.PositiveSpan[0].GetLength() != 1 || len(h.PositiveDelta) != 1 || h.PositiveDelta[0] != 2 {
			t.Fatalf("native buckets: schema %d spans %v deltas %v", h.GetSchema(), h.PositiveSpan, h.PositiveDelta)
		}
		i := float64(h.PositiveSpan[0].GetOffset())
		lo, hi := math.Exp2((i-1)/64), math.Exp2(i/64)
		if !(lo < 0.001*1.011 && 0.001*0.989 <= hi) {
			t.Fatalf("native bucket %g (%g, %g] does not hold 1 ms", i, lo, hi)
		}
		return
	}
	t.Fatal("no spillway_queue_wait_seconds")
}

// Scrapes while sources come and go and messages flow: the collector is
// safe for concurrent use (run under -race), and a removed source stops
// being exported.
func TestCollectorConcurrent(t *testing.T) {
	q, top := fixture(t)
	c := NewCollector(Topic("events", top)).Shards(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 2)
	go func() {
		for i := range 200 {
			if i%2 == 0 {
				c.Add(Queue("orders", q))
			} else {
				c.RemoveQueue("orders")
			}
		}
		done <- nil
	}()
	go func() {
		for range 200 {
			if err := top.Publish(ctx, spillway.Message{Value: []byte("x")}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 50 {
		if _, err := testutil.CollectAndLint(c); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	c.RemoveQueue("orders")
	if n := testutil.CollectAndCount(c, "spillway_queue_messages_sent_total"); n != 0 {
		t.Fatalf("%d queue series after RemoveQueue", n)
	}
	c.RemoveTopic("events")
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("%d series with no sources", n)
	}
}

// The lifecycle's counters and gauges: a duplicate, an expired and a
// delayed message on a queue and on a topic (the expiry seen by the
// subscription that came to it).
func TestCollectorLifecycle(t *testing.T) {
	clock := spillway.NewManualClock(time.Unix(1e9, 0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := spillway.OpenQueue(spillway.Options{Shards: 1, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, q)
	top, err := spillway.OpenTopic(spillway.Options{Shards: 1, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, top)
	sub, err := top.Subscribe("s")
	if err != nil {
		t.Fatal(err)
	}
	past, later := clock.Now().Add(-time.Second), clock.Now().Add(time.Hour)
	for _, send := range []func(context.Context, spillway.Message) error{q.Send, top.Publish} {
		for _, m := range []spillway.Message{{ID: "x"}, {ID: "x"}, {ExpiresAt: past}, {DeliverAt: later}} {
			if err := send(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d, err := sub.TryReceive(); err != nil || len(d.Value) != 0 { // "x"; the expired one is skipped
		t.Fatalf("TryReceive: %v", err)
	}
	if _, err := sub.TryReceive(); !errors.Is(err, spillway.ErrEmpty) {
		t.Fatalf("TryReceive: %v, want ErrEmpty", err)
	}
	c := NewCollector(Queue("orders", q), Topic("events", top))
	const want = `
# HELP spillway_queue_messages_expired_total Messages past their ExpiresAt or MessageTTL, never delivered (dead-lettered or dropped).
# TYPE spillway_queue_messages_expired_total counter
spillway_queue_messages_expired_total{queue="orders"} 1
# HELP spillway_queue_messages_deduplicated_total Sends whose Message.ID was seen within DedupWindow: acknowledged, not queued again.
# TYPE spillway_queue_messages_deduplicated_total counter
spillway_queue_messages_deduplicated_total{queue="orders"} 1
# HELP spillway_queue_delayed_messages Messages waiting for their DeliverAt.
# TYPE spillway_queue_delayed_messages gauge
spillway_queue_delayed_messages{queue="orders"} 1
# HELP spillway_topic_messages_deduplicated_total Sends whose Message.ID was seen within DedupWindow: acknowledged, not queued again.
# TYPE spillway_topic_messages_deduplicated_total counter
spillway_topic_messages_deduplicated_total{topic="events"} 1
# HELP spillway_topic_delayed_messages Messages waiting for their DeliverAt.
# TYPE spillway_topic_delayed_messages gauge
spillway_topic_delayed_messages{topic="events"} 1
# HELP spillway_subscription_messages_expired_total Messages past their ExpiresAt or MessageTTL, never delivered (dead-lettered or dropped).
# TYPE spillway_subscription_messages_expired_total counter
spillway_subscription_messages_expired_total{subscription="s",topic="events"} 1
`
	names := []string{
		"spillway_queue_messages_expired_total", "spillway_queue_messages_deduplicated_total", "spillway_queue_delayed_messages",
		"spillway_topic_messages_deduplicated_total", "spillway_topic_delayed_messages", "spillway_subscription_messages_expired_total",
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}
