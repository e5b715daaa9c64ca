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
// A Topic fans messages out to named subscriptions: each gets every message
// published after it was created, and the receivers of one subscription
// compete, as on a Queue. A message is stored once, in a shard's broadcast
// ring, whatever the number of subscriptions. A subscription that falls a
// ring behind and does not make room within a scheduler time slice moves to
// the shard's spill log (written once, for every lagging subscription) and
// rejoins the ring when it catches up, so a slow subscriber holds back
// neither the publisher nor the others.
//
//	t, err := spillway.OpenTopic(spillway.Options{Dir: "/var/spool/app-events"}) // a directory of its own
//	...
//	audit, err := t.Subscribe("audit")
//	...
//	err = t.Publish(ctx, spillway.Message{Key: userID, Value: event})
//	...
//	d, err := audit.Receive(ctx)
//
// A Queue is Ephemeral by default: its Dir is overflow space, emptied when
// it opens and when it closes. With Durability Persistent every message a
// Send accepted is in its shard's log in Dir before Send returns, acks and
// how far receivers got are recorded beside it, and reopening the
// directory resumes: unsettled deliveries come back with their attempts,
// then the messages never delivered, in order. A kill -9 loses nothing that
// returned; what a power loss may take back depends on Sync (SyncNever,
// SyncInterval, SyncAlways). Close syncs and drops nothing.
//
//	q, err := spillway.OpenQueue(spillway.Options{
//		Dir:        "/var/lib/app/queue",
//		Durability: spillway.Persistent,
//		Sync:       spillway.SyncAlways, // Send returns once synced, with others (group commit)
//		Ack:        spillway.ManualAck,
//	})
//	...
//	rec := q.Recovery() // what the open found: messages waiting, redelivered, lost
//
// A Persistent Topic keeps every message in its shards' logs and its
// subscriptions beside them: a subscription resumes after a reopen where
// it was, a new one may start at the earliest message retained, at a time
// or at a saved Position, Seek moves one, and Retention says how long the
// logs keep what (until every subscription has it, or by age and size
// whatever the subscriptions did).
//
//	t, err := spillway.OpenTopic(spillway.Options{Dir: dir, Durability: spillway.Persistent})
//	...
//	rebuild, err := t.SubscribeAt("rebuild", spillway.Earliest())
//	...
//	err = rebuild.Seek(spillway.AtTime(yesterday))
//
// Messages have a lifecycle, as in SQS, RabbitMQ and JetStream: an ID
// deduplicates retries within Options.DedupWindow (exactly; across
// restarts when Persistent); DeliverAt holds a message until then (a
// timing wheel in memory; when Persistent, the log, across restarts);
// ExpiresAt (or Options.MessageTTL) keeps it from being delivered after
// then (it is dead-lettered with reason "expired", or dropped, and
// counted); Priority orders a Queue, or each subscription of a Topic,
// with Options.Priorities levels.
//
//	err = q.Send(ctx, spillway.Message{Value: v, ID: orderID, DeliverAt: time.Now().Add(time.Minute)})
//
// Guarantees, per shard: FIFO order, across the move to disk and back and
// across restarts (a redelivery is the exception: it comes back out of
// order). AutoAck delivers each message at most once; ManualAck at least
// once. Nothing is dropped without being counted in Stats.Dropped, and what
// a failed spill drops is also reported to Options.OnError (see
// ErrSpillFailed); a Persistent queue whose disk failed says so in every
// later call (ErrStorage).
package spillway
