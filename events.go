package spillway

import (
	"context"
	"log/slog"
)

// The messages of the events a Queue or Topic logs to Options.Logger: stable,
// for handlers and queries to match on. Their attributes are listed in the
// README's Observability section. To tell queues apart, give each a logger
// with an attribute of its own (logger.With("queue", "orders")).
const (
	// Info: a shard's ring was full and it began writing to its spill
	// (attributes shard, dir), and drained it (shard, spilled).
	EventSpillStarted = "spillway.spill.started"
	EventSpillEnded   = "spillway.spill.ended"
	// Info, or Warn when something was lost or quarantined: what opening a
	// Persistent queue found (messages, redelivered, skipped, lost,
	// truncated_bytes, quarantined, segments, scanned, took).
	EventRecovered = "spillway.recovered"
	// Warn: opening a Persistent queue found a run of corrupt batches
	// followed by good ones, and moved it aside to a sidecar file
	// (shard, segment, position, bytes, batches, first, end: the offsets
	// lost, sidecar, reason). One per run, before EventRecovered.
	EventQuarantined = "spillway.batch.quarantined"
	// Error: a failure no call could return (the error OnError gets: a
	// failed write or sync, a corrupt batch skipped), with error.
	EventFailure = "spillway.failure"
	// Warn: a spill reached MaxDiskBytes; senders wait (shard, max_disk_bytes).
	// Logged once per spill.
	EventDiskFull = "spillway.disk.full"
	// Debug: a message went to the dead-letter queue, or was dropped for
	// want of one (shard, offset, attempts, dropped).
	EventDeadLetter = "spillway.dead_letter"
	// Debug: a ManualAck lease ran out before its Ack (shard, offset,
	// attempt).
	EventLeaseExpired = "spillway.lease.expired"
)

// logEvent logs msg at level with attrs to l, if l logs at level: the
// check keeps events from costing anything when nobody listens.
func logEvent(l *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	if l != nil && l.Enabled(context.Background(), level) {
		l.LogAttrs(context.Background(), level, msg, attrs...)
	}
}

// event logs an event of the group's (see logEvent).
func (g *group) event(level slog.Level, msg string, attrs ...slog.Attr) {
	logEvent(g.opts.Logger, level, msg, attrs...)
}
