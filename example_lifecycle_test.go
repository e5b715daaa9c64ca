package spillway_test

import (
	"context"
	"fmt"
	"log"
	"time"

	spillway "github.com/spillway-io/spillway"
)

// The message lifecycle: a retry deduplicated by its ID, a delayed
// message held until its time, an expired one never delivered, a
// high-priority one first. (A ManualClock stands in for time.)
func ExampleMessage_lifecycle() {
	clock := spillway.NewManualClock(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	q, err := spillway.OpenQueue(spillway.Options{Shards: 1, Priorities: 2, Clock: clock})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	now := clock.Now()
	for _, m := range []spillway.Message{
		{Value: []byte("order 1"), ID: "order-1"},
		{Value: []byte("order 1, retried"), ID: "order-1"}, // within DedupWindow: not queued again
		{Value: []byte("reminder"), DeliverAt: now.Add(time.Hour)},
		{Value: []byte("offer"), ExpiresAt: now.Add(time.Minute)},
		{Value: []byte("alarm"), Priority: 1},
	} {
		if err := q.Send(ctx, m); err != nil {
			log.Fatal(err)
		}
	}
	receive := func() {
		d, err := q.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(d.Value))
	}
	receive()
	receive()
	clock.Advance(2 * time.Hour) // the offer expires, the reminder is due
	receive()
	st := q.Stats()
	fmt.Println("deduplicated:", st.Deduplicated, "expired:", st.Expired)
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// alarm
	// order 1
	// reminder
	// deduplicated: 1 expired: 1
}
