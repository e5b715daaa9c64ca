package spillway

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
}
