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
	Trimmed      uint64 // a Persistent topic's messages retention removed before the subscription read them (Limits)
	Expired      uint64 // messages past their ExpiresAt (or MessageTTL) before a delivery: dead-lettered (DeadExpired) or dropped
	Deduplicated uint64 // messages not queued because their ID was sent within DedupWindow
	DedupEvicted uint64 // ids the window forgot before their time, to stay within DedupMaxIDs

	Depth     int64  // messages waiting to be delivered: in rings, on disk, or waiting for redelivery (Delayed ones are not in it)
	Delayed   int64  // messages held until their DeliverAt
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

	// SpillingShards counts the shards whose messages are partly on disk:
	// for a Queue, shards that spill; for a Topic, shards with a spill log;
	// for a subscription, shards it reads from a spill rather than the
	// ring (it lags by more than a ring).
	SpillingShards int
	// Receivers is, for a subscription, how many Subscription handles are
	// attached (open); for a Topic, the sum over its subscriptions; 0 for
	// a Queue.
	Receivers int64

	// Shards holds each shard's part, in shard order, when asked for
	// (StatsWith, StatsOptions.Shards); nil from Stats.
	Shards []ShardStats
}

// StatsOptions says what StatsWith adds to what Stats returns.
type StatsOptions struct {
	// Shards fills Stats.Shards: one entry per shard.
	Shards bool
	// Histograms, if not nil, gets the histograms the latencies are read
	// from (left as it is when LatencySampling is off).
	Histograms *Histograms
}

// ShardStats is one shard's part of Stats (of a Queue, a Topic, or a
// subscription: the subscription's part of each of its topic's shards).
type ShardStats struct {
	Shard     int
	Sent      uint64        // Queue and Topic: messages that went to the shard
	Delivered uint64        // deliveries from the shard, redeliveries included
	Depth     int64         // messages waiting to be delivered
	InFlight  int64         // ManualAck deliveries not yet settled
	Spilling  bool          // the shard spills (subscription: reads its spill)
	DiskBytes int64         // bytes its spill files or log reserve (subscription: 0)
	OldestAge time.Duration // see Stats.OldestAge
}

// add adds part's counters and gauges to st (not the latencies, nor
// Shards).
func (st *Stats) add(part *Stats) {
	st.Sent += part.Sent
	st.Delivered += part.Delivered
	st.Acked += part.Acked
	st.Redelivered += part.Redelivered
	st.DeadLettered += part.DeadLettered
	st.Dropped += part.Dropped
	st.Spilled += part.Spilled
	st.Trimmed += part.Trimmed
	st.Expired += part.Expired
	st.Deduplicated += part.Deduplicated
	st.DedupEvicted += part.DedupEvicted
	st.Delayed += part.Delayed
	st.Depth += part.Depth
	st.InFlight += part.InFlight
	st.DiskBytes += part.DiskBytes
	st.DataBytes += part.DataBytes
	st.Syncs += part.Syncs
	st.SpillingShards += part.SpillingShards
	st.Receivers += part.Receivers
}

// shardPart returns part as shard idx's ShardStats; oldest is the send
// time of its oldest timed message (0: none), now the time to age it
// from.
func shardPart(idx int, part *Stats, spilling bool, oldest, now int64) ShardStats {
	ss := ShardStats{
		Shard: idx, Sent: part.Sent, Delivered: part.Delivered,
		Depth: part.Depth, InFlight: part.InFlight, Spilling: spilling, DiskBytes: part.DiskBytes,
	}
	if oldest != 0 {
		ss.OldestAge = max(time.Duration(now-oldest), 0)
	}
	return ss
}

// shardParts returns a Topic's or a subscription's shard parts: parts[i]
// and the send time of its oldest timed message olds[i], aged by lat's
// clock (a shard spills if its part counts a spilling shard).
func shardParts(parts []Stats, olds []int64, lat *timing) []ShardStats {
	var now int64
	if lat.every != 0 {
		now = lat.now()
	}
	out := make([]ShardStats, len(parts))
	for i := range parts {
		out[i] = shardPart(i, &parts[i], parts[i].SpillingShards != 0, olds[i], now)
	}
	return out
}

// older returns the older of two send times, 0 meaning none.
func older(a, b int64) int64 {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}
