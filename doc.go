// Package spillway is an in-process queue engine: what a Go program uses
// instead of a channel, an NSQ topic or an SQS queue when it needs more than
// a channel gives, at memory speed.
//
// A Queue moves messages from producers to competing consumers through
// sharded lock-free rings (package ring). A message with a key goes to the
// shard its key hashes to, so equal keys keep their order; keyless messages
// spread over the shards. When a shard's ring is full, the Overflow policy
// decides: by default (with a spill directory) the message spills to a
// segment log on disk (package mmap), compressed in batches (package codec),
// and comes back in order once the consumers reach it; memory stays bounded
// by the rings. Under ManualAck every delivery is leased: Ack settles it,
// Nack or an expired lease redelivers it, and after MaxAttempts it goes to
// the dead-letter queue.
//
//	q, err := spillway.OpenQueue(spillway.Options{Dir: "/var/spool/app"})
//	...
//	err = q.Send(ctx, spillway.Message{Key: userID, Value: event})
//	...
//	d, err := q.Receive(ctx)
//	handle(d.Value)
//
// Guarantees, per shard: FIFO order, across the move to disk and back (a
// redelivery is the exception: it comes back out of order). AutoAck
// delivers each message at most once; ManualAck at least once. Nothing is
// dropped without being counted in Stats.Dropped.
package spillway
