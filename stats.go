package spillway

import "time"

// Stats are a queue's counters and gauges. Counters only grow. Under
// concurrent use Stats is a snapshot assembled from per-shard parts; when the
// queue is quiet it is exact.
type Stats struct {
	Sent         uint64 // messages accepted by Send, SendBatch and TrySend
	Delivered    uint64 // deliveries handed to receivers, redeliveries included
	Acked        uint64 // ManualAck deliveries acked
	Redelivered  uint64 // deliveries of messages that had been delivered before
	DeadLettered uint64 // messages that ran out of attempts or were terminated
	Dropped      uint64 // messages lost to DropOldest, a full dead-letter queue, a failed spill, or Close
	Spilled      uint64 // messages written to a spill log

	Depth     int64  // messages waiting to be delivered: in rings, on disk, or waiting for redelivery
	InFlight  int64  // ManualAck deliveries not yet settled
	DiskBytes int64  // bytes the spill files (Persistent: the logs) reserve on disk
	DataBytes int64  // bytes of batches the spill files (the logs) hold (at most DiskBytes)
	Syncs     uint64 // Persistent: fdatasync calls made (on logs, journals, cursors)

	// Latencies of the timed messages (Options.LatencySampling), from
	// histograms kept since the queue opened (for a Topic: merged over its
	// subscriptions). Send times travel with the messages, through spill
	// files and logs.
	//
	// OldestAge is how long the oldest timed message waiting for its first
	// delivery has waited, among those in memory (rings, and the batch
	// read back from disk); 0 when there is none. With LatencySampling 1 it
	// is the oldest message's age; with N, it may be younger by the time N
	// messages take to send.
	OldestAge  time.Duration
	QueueWait  Latency // from Send to first delivery
	AckLatency Latency // ManualAck: from first delivery to Ack
}
