package spillway

import (
	"fmt"
	"math/bits"
	"runtime"
	"time"

	"github.com/spillway-io/spillway/codec"
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
	Zstd Compression = iota // zstd "fastest": the default; spill files hold about 30% of the message bytes
	S2                      // S2: about 2x faster than zstd, about 40% of the message bytes
	None                    // no compression
)

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

// Options configure a Queue (and a Topic). The zero value of each field
// means its default; see each field.
type Options struct {
	// Dir is the spill directory; "" keeps the queue in memory only. One
	// open Queue at a time may use a directory; its spill files are removed
	// on Close.
	Dir string
	// Shards is the number of shards, rounded up to a power of two. Default:
	// GOMAXPROCS rounded up.
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
	// Clock drives leases and delays. Default SystemClock.
	Clock Clock
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
)

func (o Options) withDefaults() (Options, error) {
	if o.Shards < 0 || o.RingSize < 0 || o.MaxDiskBytes < 0 || o.MaxMessageBytes < 0 || o.AckTimeout < 0 || o.MaxAttempts < 0 {
		return o, fmt.Errorf("%w: negative value", ErrInvalidOptions)
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
	return o, nil
}
