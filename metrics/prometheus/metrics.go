package prometheus

import (
	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-io/spillway"
)

// statDef is one metric read from a Stats.
type statDef struct {
	name, help string
	kind       prom.ValueType
	value      func(*spillway.Stats) float64
}

// Every metric a scope can have, in the order they are exported. Names
// follow Prometheus conventions: base units (seconds, bytes), _total on
// counters, the unit last.
var (
	sent         = statDef{"messages_sent_total", "Messages accepted (Send, SendBatch, TrySend; for a topic, Publish).", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Sent) }}
	delivered    = statDef{"messages_delivered_total", "Deliveries handed to receivers, redeliveries included.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Delivered) }}
	acked        = statDef{"messages_acked_total", "ManualAck deliveries acked.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Acked) }}
	redelivered  = statDef{"messages_redelivered_total", "Deliveries of messages that had been delivered before.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Redelivered) }}
	deadLettered = statDef{"messages_dead_lettered_total", "Messages that ran out of attempts or were terminated.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.DeadLettered) }}
	dropped      = statDef{"messages_dropped_total", "Messages lost to DropOldest, a full dead-letter queue, a failed spill, or Close.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Dropped) }}
	trimmed      = statDef{"messages_trimmed_total", "Messages retention removed before the subscription read them (Retention Limits).", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Trimmed) }}
	expired      = statDef{"messages_expired_total", "Messages past their ExpiresAt or MessageTTL, never delivered (dead-lettered or dropped).", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Expired) }}
	deduplicated = statDef{"messages_deduplicated_total", "Sends whose Message.ID was seen within DedupWindow: acknowledged, not queued again.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Deduplicated) }}
	dedupEvicted = statDef{"dedup_ids_evicted_total", "IDs the duplicate window forgot before DedupWindow ended (DedupMaxIDs reached).", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.DedupEvicted) }}
	delayed      = statDef{"delayed_messages", "Messages waiting for their DeliverAt.", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.Delayed) }}
	spilled      = statDef{"messages_spilled_total", "Messages written to a spill log.", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Spilled) }}
	syncs        = statDef{"syncs_total", "fdatasync calls made (Persistent).", prom.CounterValue, func(s *spillway.Stats) float64 { return float64(s.Syncs) }}
	depth        = statDef{"depth_messages", "Messages waiting to be delivered (for a subscription: its lag in messages).", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.Depth) }}
	inFlight     = statDef{"in_flight_messages", "ManualAck deliveries not yet settled.", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.InFlight) }}
	diskReserved = statDef{"disk_reserved_bytes", "Bytes the spill files or logs reserve on disk.", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.DiskBytes) }}
	diskData     = statDef{"disk_data_bytes", "Bytes of batches the spill files or logs hold.", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.DataBytes) }}
	oldestAge    = statDef{"oldest_message_age_seconds", "Age of the oldest timed message waiting for its first delivery (for a subscription: its lag in time).", prom.GaugeValue, func(s *spillway.Stats) float64 { return s.OldestAge.Seconds() }}
	spilling     = statDef{"spilling_shards", "Shards whose messages are partly on disk (for a subscription: shards it reads from a spill).", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.SpillingShards) }}
	receivers    = statDef{"receivers", "Receivers attached (open Subscription handles).", prom.GaugeValue, func(s *spillway.Stats) float64 { return float64(s.Receivers) }}
)

var (
	queueStats = []statDef{sent, delivered, acked, redelivered, deadLettered, dropped, expired, deduplicated, dedupEvicted, spilled, syncs, depth, delayed, inFlight, diskReserved, diskData, oldestAge, spilling}
	topicStats = []statDef{sent, deduplicated, dedupEvicted, spilled, syncs, delayed, diskReserved, diskData, spilling}
	subStats   = []statDef{delivered, acked, redelivered, deadLettered, dropped, trimmed, expired, depth, delayed, inFlight, oldestAge, spilling, receivers}
)

// shardDef is one metric read from a ShardStats.
type shardDef struct {
	name, help string
	kind       prom.ValueType
	value      func(*spillway.ShardStats) float64
}

// shardSent is a Queue's or a Topic's shard's (a subscription's shards
// send nothing).
var shardSent = shardDef{"messages_sent_total", "Messages that went to the shard.", prom.CounterValue, func(s *spillway.ShardStats) float64 { return float64(s.Sent) }}

var shardStats = []shardDef{
	{"messages_delivered_total", "Deliveries from the shard, redeliveries included.", prom.CounterValue, func(s *spillway.ShardStats) float64 { return float64(s.Delivered) }},
	{"depth_messages", "Messages waiting in the shard.", prom.GaugeValue, func(s *spillway.ShardStats) float64 { return float64(s.Depth) }},
	{"in_flight_messages", "ManualAck deliveries from the shard not yet settled.", prom.GaugeValue, func(s *spillway.ShardStats) float64 { return float64(s.InFlight) }},
	{"spilling", "1 while the shard spills (for a subscription: reads its spill), else 0.", prom.GaugeValue, func(s *spillway.ShardStats) float64 {
		if s.Spilling {
			return 1
		}
		return 0
	}},
	{"disk_reserved_bytes", "Bytes the shard's spill files or log reserve on disk.", prom.GaugeValue, func(s *spillway.ShardStats) float64 { return float64(s.DiskBytes) }},
	{"oldest_message_age_seconds", "Age of the shard's oldest timed message waiting for its first delivery.", prom.GaugeValue, func(s *spillway.ShardStats) float64 { return s.OldestAge.Seconds() }},
}

// scopeDescs are the descriptions of one scope's metrics.
type scopeDescs struct {
	stats     []describedStat
	wait, ack *prom.Desc // nil for a scope without latencies
}

type describedStat struct {
	def  statDef
	desc *prom.Desc
}

type shardDescs struct {
	stats []describedShard
}

type describedShard struct {
	def  shardDef
	desc *prom.Desc
}

type descs struct {
	queue, topic, sub                scopeDescs
	queueShard, topicShard, subShard shardDescs
}

func newDescs() descs {
	scope := func(prefix string, defs []statDef, latencies bool, labels ...string) scopeDescs {
		var sd scopeDescs
		for _, d := range defs {
			sd.stats = append(sd.stats, describedStat{d, prom.NewDesc(prefix+d.name, d.help, labels, nil)})
		}
		if latencies {
			sd.wait = prom.NewDesc(prefix+"wait_seconds", "Time from send to first delivery of the timed messages (Options.LatencySampling).", labels, nil)
			sd.ack = prom.NewDesc(prefix+"ack_latency_seconds", "Time from first delivery to Ack of the timed ManualAck deliveries.", labels, nil)
		}
		return sd
	}
	shard := func(prefix string, sent bool, labels ...string) shardDescs {
		var sd shardDescs
		defs := shardStats
		if sent {
			defs = append([]shardDef{shardSent}, shardStats...)
		}
		for _, d := range defs {
			sd.stats = append(sd.stats, describedShard{d, prom.NewDesc(prefix+d.name, d.help, labels, nil)})
		}
		return sd
	}
	return descs{
		queue:      scope("spillway_queue_", queueStats, true, "queue"),
		topic:      scope("spillway_topic_", topicStats, false, "topic"),
		sub:        scope("spillway_subscription_", subStats, true, "topic", "subscription"),
		queueShard: shard("spillway_queue_shard_", true, "queue", "shard"),
		topicShard: shard("spillway_topic_shard_", true, "topic", "shard"),
		subShard:   shard("spillway_subscription_shard_", false, "topic", "subscription", "shard"),
	}
}

// all returns every description.
func (d *descs) all() []*prom.Desc {
	var all []*prom.Desc
	for _, s := range []*scopeDescs{&d.queue, &d.topic, &d.sub} {
		for _, m := range s.stats {
			all = append(all, m.desc)
		}
		if s.wait != nil {
			all = append(all, s.wait, s.ack)
		}
	}
	for _, s := range []*shardDescs{&d.queueShard, &d.topicShard, &d.subShard} {
		for _, m := range s.stats {
			all = append(all, m.desc)
		}
	}
	return all
}
