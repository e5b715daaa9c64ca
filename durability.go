package spillway

import "time"

// Durability says what a Queue's disk is for.
type Durability int

const (
	// Ephemeral, the default: memory first, and Dir (if set) is overflow
	// space only. Spill files are removed when the queue opens and when it
	// closes; nothing survives a restart.
	Ephemeral Durability = iota
	// Persistent: every message a Send accepted is in its shard's log on
	// disk before Send returns, and reopening Dir resumes where the queue
	// was. The ring is then a read cache: receivers take a message from
	// memory while the ring still holds it, from the log otherwise. What
	// survives what depends on Sync (see SyncPolicy); Persistent needs Dir.
	Persistent
)

func (d Durability) String() string {
	switch d {
	case Ephemeral:
		return "ephemeral"
	case Persistent:
		return "persistent"
	}
	return "unknown"
}

// SyncPolicy says when a Persistent queue makes what it wrote durable
// (fdatasync), and so what a power loss can take back. A crash of the
// process (kill -9, a panic) loses nothing under any of them: writes are in
// the operating system's page cache when Send returns.
type SyncPolicy int

const (
	// SyncNever leaves writing back to the operating system: a power loss
	// (or a crash of the kernel) may take back anything written since the
	// kernel last wrote it back. Close syncs.
	SyncNever SyncPolicy = iota
	// SyncInterval also syncs every Options.SyncEvery: a power loss takes
	// back at most what was written in the last SyncEvery (plus the sync
	// under way).
	SyncInterval
	// SyncAlways: Send, SendBatch and Ack return only once an fdatasync
	// covers what they wrote (one sync serves every caller waiting at the
	// time: group commit), and receivers get only messages already synced.
	// A power loss takes back nothing that returned.
	SyncAlways
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncNever:
		return "never"
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	}
	return "unknown"
}

const defaultSyncEvery = 200 * time.Millisecond
