package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/bridge/natsjs"
)

// A local queue in front of a JetStream stream: senders get Spillway's
// speed, and Forward moves what they sent into the stream, each message
// once, acking it locally only once the stream has it.
func ExampleForward() {
	dir, err := os.MkdirTemp("", "natsjs-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Fatal(err)
		}
	}()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: true, StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("no server")
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders"}})
	if err != nil {
		log.Fatal(err)
	}

	q, err := spillway.OpenQueue(spillway.Options{Ack: spillway.ManualAck})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			log.Fatal(err)
		}
	}()
	for _, v := range []string{"a", "b", "c"} {
		if err := q.Send(ctx, spillway.Message{Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	var stats natsjs.Stats
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- natsjs.Forward(fctx, q, js, "orders", natsjs.SourceName("orders-queue"), natsjs.WithStats(&stats))
	}()
	for stats.Forwarded.Load() < 3 { // the three are in the stream and acked locally
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the stream holds", info.State.Msgs, "messages")
	// Output: the stream holds 3 messages
}
