// Package natsjs bridges Spillway and NATS JetStream, for when one process
// is not enough: Forward drains a local ManualAck Queue or Subscription
// into a JetStream subject (Spillway as the fast local front of a stream),
// and Ingest feeds a local Queue from a JetStream consumer (a stream
// feeding local workers).
//
// Forward acks a local delivery only after JetStream's PubAck for it, and
// publishes each message with a Nats-Msg-Id made of where it came from
// (the source's name, shard and offset): a message published again after
// a crash or a lost PubAck falls in the stream's duplicate window and is
// stored once. With a Persistent source, whose offsets survive restarts,
// that is exactly-once into the stream.
//
// Ingest acks a JetStream message only after the local Send returned
// (for a Persistent queue, as durable as its SyncPolicy says), and sends
// it with a Message.ID of its stream and sequence: a redelivery of a
// message it already queued (its ack lost, or a crash between the Send
// and the ack) is not queued twice. Into a Persistent queue, whose
// duplicate window survives crashes, that is exactly-once across
// crashes, within the queue's DedupWindow.
//
// It is a module of its own, so that the library's go.mod does not
// depend on nats.go.
package natsjs
