package spillway

import (
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"time"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// Overflow says what a Send does when its shard's ring is full.
type Overflow int

const (
	// SpillToDisk writes the message to the shard's spill log, behind
	// everything already spilled; it comes back in order. The default when
	// Options.Dir is set. When the spill reaches MaxDiskBytes, Send waits
	// (and TrySend fails with ErrDiskFull) until the consumers drain it.
	SpillToDisk Overflow = iota + 1
	// Block makes Send wait for room (TrySend fails with ErrFull). The
	// default without Dir.
	Block
	// Reject makes Send fail at once with ErrFull.
	Reject
	// DropOldest drops the shard's oldest waiting message to make room; the
	// drop is counted in Stats.Dropped.
	DropOldest
)

func (o Overflow) String() string {
	switch o {
	case SpillToDisk:
		return "spill"
	case Block:
		return "block"
	case Reject:
		return "reject"
	case DropOldest:
		return "drop-oldest"
	}
	return "default"
}

// Compression is the codec of spilled batches.
type Compression int

const (
	Zstd Compression = iota // zstd "fastest": the default, the smallest spill files
	S2                      // S2: faster than zstd, somewhat larger files
	None                    // no compression
)

func (c Compression) String() string { return c.codec().String() }

func (c Compression) codec() codec.Compression {
	switch c {
	case S2:
		return codec.S2
	case None:
		return codec.None
	}
	return codec.Zstd
}

// AckMode chooses between at-most-once and at-least-once delivery.
type AckMode int

const (
	// AutoAck settles each message as it is delivered: at-most-once. The
	// default.
	AutoAck AckMode = iota
	// ManualAck leases each delivery for AckTimeout: unless it is acked in
	// time, it is delivered again (at-least-once), up to MaxAttempts times.
	ManualAck
)

func (a AckMode) String() string {
	switch a {
	case AutoAck:
		return "auto"
	case ManualAck:
		return "manual"
	}
	return "unknown"
}

// Options configure a Queue (and a Topic). The zero value of each field
// means its default; see each field.
type Options struct {
	// Name names the Queue or Topic in what it tells others: the
	// dead-letter headers (HeaderDeadSource). Default "".
	Name string
	// Dir is the queue's directory: its spill files (Ephemeral) or its logs
	// (Persistent). "" keeps the queue in memory only. One open Queue or
	// Topic at a time may use a directory (it holds the LOCK file's lock).
	Dir string
	// Durability is Ephemeral (the default: Dir is overflow space, emptied
	// on open and on Close) or Persistent (every message is in a log in Dir
	// before Send returns, and reopening Dir resumes).
	Durability Durability
	// Sync says when a Persistent queue syncs what it wrote. Default
	// SyncNever. Only for Persistent.
	Sync SyncPolicy
	// SyncEvery is SyncInterval's period, and how often a Persistent queue
	// of any policy looks for consumed segments to delete. Default 200ms.
	SyncEvery time.Duration
	// Shards is the number of shards, rounded up to a power of two. Default:
	// GOMAXPROCS rounded up, or, reopening a Persistent queue, the number it
	// was created with (another number fails: keys would hash elsewhere).
	Shards int
	// RingSize is each shard's ring capacity in messages, rounded up to a
	// power of two. Default 4096.
	RingSize int
	// Overflow is the policy when a shard's ring is full. Default
	// SpillToDisk with Dir, Block without.
	Overflow Overflow
	// Compression of spilled batches. Default Zstd.
	Compression Compression
	// MaxDiskBytes bounds the spill files of all shards together (rounded
	// to whole segments). Default 0: only the device's capacity.
	MaxDiskBytes int64
	// MaxMessageBytes bounds a message's key, value and headers together;
	// larger messages fail with ErrTooLarge. Default 1 MiB, at most 4 GiB-1.
	// Keys and headers have bounds of their own (MaxKeyBytes, MaxHeaders).
	MaxMessageBytes int
	// Ack is the delivery guarantee. Default AutoAck.
	Ack AckMode
	// AckTimeout is the lease of a ManualAck delivery. Default 30s.
	AckTimeout time.Duration
	// MaxAttempts is how many times a ManualAck message is delivered before
	// it is dead-lettered. Default 20.
	MaxAttempts int
	// DeadLetter receives messages that ran out of attempts or were
	// terminated. Without one they are dropped and counted.
	DeadLetter *Queue
	// Clock drives leases and delays, and times messages. Default
	// SystemClock.
	Clock Clock
	// LatencySampling times 1 in LatencySampling messages, rounded up to a
	// power of two: how long each waited from its send to its first
	// delivery (Stats.QueueWait) and, under ManualAck, from delivery to
	// Ack (Stats.AckLatency). A clock read is tens of ns on a VM: one per
	// timed message on each side, the cost spread over the messages
	// between. Default 256 (1 in 64 cost batches of 64 a tenth more);
	// negative: nothing is timed (Stats.OldestAge then stays 0).
	LatencySampling int
	// Logger receives the events an operator acts on (see the README's
	// Observability section): spills starting and ending, recoveries,
	// quarantined batches, failed writes and syncs, a full disk quota; dead
	// letters and expired leases at Debug. Never an ordinary message's
	// path. nil: silent.
	Logger *slog.Logger
	// fs is the file system under Dir; nil means the operating system's.
	// Tests set it to inject faults (mmap.FaultFS) and power losses
	// (mmap.MemFS).
	fs mmap.FS
	// segmentSize and journalSize, if set (by tests), are the sizes of
	// log segments and the least size of journal generations.
	segmentSize, journalSize int64

	// DedupWindow is how long a Message.ID is remembered: a message whose
	// ID was sent within the window before is not queued again. Default
	// (0) 2 minutes, JetStream's; negative: IDs are ignored. The window is
	// exact (every id kept, compared byte for byte: no false positive),
	// in memory: about 80 bytes plus the id's length per id sent within
	// the window, and at most DedupMaxIDs ids.
	DedupWindow time.Duration
	// DedupMaxIDs bounds the ids the window holds: past it, the oldest is
	// forgotten before its window ends (counted in Stats.DedupEvicted: a
	// retry of it would be queued again). Default 1 << 20.
	DedupMaxIDs int
	// MessageTTL is the expiry of messages sent without ExpiresAt: they
	// expire MessageTTL after Send. Default 0: none.
	MessageTTL time.Duration
	// Priorities is the number of priority levels (Message.Priority from 0
	// to Priorities-1), at most MaxPriorities. Default 1: one FIFO per
	// shard. Each level has its own shards (Shards of them), rings and
	// spill (a Persistent one, logs): memory is Priorities times a queue's
	// or topic's of one level. On a Topic each subscription takes the
	// highest level it has a message waiting in.
	Priorities int
	// DelayTick is the resolution of delayed delivery (Message.DeliverAt):
	// a message is delivered at the first tick at or after its DeliverAt,
	// so within one tick of it. Default 10ms, at least 1ms. The delay's
	// clock ticks only while messages are delayed.
	DelayTick time.Duration

	// Retention bounds what a Topic keeps of its logs (by age, by bytes)
	// and says whether subscriptions keep messages (Interest, the default)
	// or not (Limits): a Persistent Topic's logs, or an Ephemeral Topic's
	// spills (Limits). Needs Dir; not for a Queue.
	Retention Retention
	// Encryption, if set, seals everything written to Dir (spills, logs,
	// the messages journals keep) with AES-256-GCM; a directory written
	// with it cannot be opened without a key it was written with. nil:
	// nothing is encrypted.
	Encryption *Encryption

	// OnError, if set, is told of failures that no call can return because
	// they happen after the messages involved were accepted: a spill, or a
	// batch of it, that cannot be written or read back (a failed write or
	// sync, corrupt or unreadable spill files). The messages such a failure
	// loses are counted in Stats.Dropped; the error matches ErrSpillFailed
	// and wraps its cause. OnError runs on the receiving goroutine that met
	// the failure, inside its Receive call, with none of the Queue's (or
	// Topic's) locks held; it must not block for long. Without it, such
	// failures are only counted.
	OnError func(error)
}

const (
	defaultRingSize        = 4096
	defaultMaxMessageBytes = 1 << 20
	defaultAckTimeout      = 30 * time.Second
	defaultMaxAttempts     = 20
	maxShards              = 1 << 12
	defaultLatencySampling = 256
	maxLatencySampling     = 1 << 30
	defaultDedupWindow     = 2 * time.Minute
	defaultDedupMaxIDs     = 1 << 20
	defaultDelayTick       = 10 * time.Millisecond
)

// MaxPriorities bounds Options.Priorities (RabbitMQ advises at most 10
// levels: each costs its own FIFOs).
const MaxPriorities = 10

func (o Options) withDefaults() (Options, error) {
	if o.Shards < 0 || o.RingSize < 0 || o.MaxDiskBytes < 0 || o.MaxMessageBytes < 0 || o.AckTimeout < 0 || o.MaxAttempts < 0 || o.SyncEvery < 0 ||
		o.DedupMaxIDs < 0 || o.MessageTTL < 0 || o.Priorities < 0 || o.DelayTick < 0 {
		return o, fmt.Errorf("%w: negative value", ErrInvalidOptions)
	}
	if o.Encryption != nil && o.Dir == "" {
		return o, fmt.Errorf("%w: Encryption needs Dir (without one nothing is written to disk)", ErrInvalidOptions)
	}
	switch o.Durability {
	case Ephemeral:
		if o.Sync != SyncNever || o.SyncEvery != 0 {
			return o, fmt.Errorf("%w: Sync and SyncEvery apply to Durability Persistent only", ErrInvalidOptions)
		}
	case Persistent:
		if o.Dir == "" {
			return o, fmt.Errorf("%w: Durability Persistent needs Dir", ErrInvalidOptions)
		}
		if o.Sync < SyncNever || o.Sync > SyncAlways {
			return o, fmt.Errorf("%w: sync policy %d", ErrInvalidOptions, o.Sync)
		}
		if o.SyncEvery == 0 {
			o.SyncEvery = defaultSyncEvery
		}
	default:
		return o, fmt.Errorf("%w: durability %d", ErrInvalidOptions, o.Durability)
	}
	if o.fs == nil {
		o.fs = mmap.OSFS{}
	}
	if o.Shards == 0 {
		o.Shards = runtime.GOMAXPROCS(0)
	}
	if o.Shards > maxShards {
		return o, fmt.Errorf("%w: %d shards, at most %d", ErrInvalidOptions, o.Shards, maxShards)
	}
	o.Shards = 1 << bits.Len(uint(o.Shards-1))
	if o.RingSize == 0 {
		o.RingSize = defaultRingSize
	}
	if o.Overflow == 0 {
		o.Overflow = Block
		if o.Dir != "" {
			o.Overflow = SpillToDisk
		}
	}
	if o.Overflow < SpillToDisk || o.Overflow > DropOldest {
		return o, fmt.Errorf("%w: overflow policy %d", ErrInvalidOptions, o.Overflow)
	}
	if o.Overflow == SpillToDisk && o.Dir == "" {
		return o, fmt.Errorf("%w: SpillToDisk needs Dir", ErrInvalidOptions)
	}
	if o.Compression < Zstd || o.Compression > None {
		return o, fmt.Errorf("%w: compression %d", ErrInvalidOptions, o.Compression)
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = defaultMaxMessageBytes
	}
	if uint64(o.MaxMessageBytes) > maxMessageBytes {
		return o, fmt.Errorf("%w: MaxMessageBytes %d, at most %d", ErrInvalidOptions, o.MaxMessageBytes, uint64(maxMessageBytes))
	}
	if o.Ack != AutoAck && o.Ack != ManualAck {
		return o, fmt.Errorf("%w: ack mode %d", ErrInvalidOptions, o.Ack)
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = defaultAckTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = defaultMaxAttempts
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = defaultDedupWindow
	}
	if o.DedupMaxIDs == 0 {
		o.DedupMaxIDs = defaultDedupMaxIDs
	}
	if o.Priorities == 0 {
		o.Priorities = 1
	}
	if o.Priorities > MaxPriorities {
		return o, fmt.Errorf("%w: %d priorities, at most %d", ErrInvalidOptions, o.Priorities, MaxPriorities)
	}
	if o.DelayTick == 0 {
		o.DelayTick = defaultDelayTick
	}
	if o.DelayTick < time.Millisecond {
		return o, fmt.Errorf("%w: DelayTick %v, at least 1ms", ErrInvalidOptions, o.DelayTick)
	}
	switch {
	case o.LatencySampling == 0:
		o.LatencySampling = defaultLatencySampling
	case o.LatencySampling > maxLatencySampling:
		return o, fmt.Errorf("%w: LatencySampling %d, at most %d", ErrInvalidOptions, o.LatencySampling, maxLatencySampling)
	case o.LatencySampling > 0:
		o.LatencySampling = 1 << bits.Len(uint(o.LatencySampling-1))
	}
	return o, nil
}
