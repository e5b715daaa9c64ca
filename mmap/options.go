package mmap

import (
	"time"

	"github.com/spillway-io/spillway/codec"
)

// SyncPolicy says when appended data is made durable (fdatasync).
type SyncPolicy int64

const (
	// SyncNever leaves writing back to the operating system: data survives a
	// crash of the process (it is in the page cache) but not a power loss or
	// kernel crash. Close still syncs.
	SyncNever SyncPolicy = 0
	// SyncAlways syncs before Append returns: an acknowledged batch survives
	// power loss.
	SyncAlways SyncPolicy = -1
	// SyncManual leaves syncing appends to the log's owner, who calls Sync
	// (to share one sync among many appends and logs: group commit); new
	// segments, seals and directory entries are synced as under the other
	// syncing policies, and Close syncs.
	SyncManual SyncPolicy = -2
)

// SyncInterval syncs what was appended at most d ago: after a power loss,
// at most the last d of acknowledged appends (plus one sync) can be lost. d
// must be positive.
func SyncInterval(d time.Duration) SyncPolicy { return SyncPolicy(max(d, 1)) }

func (p SyncPolicy) String() string {
	switch {
	case p == SyncNever:
		return "never"
	case p == SyncAlways:
		return "always"
	case p == SyncManual:
		return "manual"
	default:
		return "every " + time.Duration(p).String()
	}
}

// Options configure a Log. The zero value of each field means its default.
type Options struct {
	// SegmentSize is the size reserved for each segment file. Default
	// 64 MiB; at least 64 KiB. A batch must fit in one segment.
	SegmentSize int64
	// Sync is the durability policy. Default SyncNever.
	Sync SyncPolicy
	// MaxBytes is a quota on the bytes reserved by all segment files: an
	// append that needs a segment beyond it fails with ErrDiskFull instead
	// of growing the directory. Default 0: no quota.
	MaxBytes int64
	// Quota, if set, is shared with other logs: a segment is created only if
	// it fits in it too.
	Quota *Quota
	// Mapped makes AppendRecords store each batch straight into a
	// writable shared mapping of the active segment, a memory copy instead
	// of a system call: what it stored is in the page cache, and survives
	// the process, when it returns, as with WriteAt. Segments are then
	// created at their full size with every block reserved (File.Grow), so
	// that a full device fails the segment's creation, never a store; where
	// the file system cannot reserve blocks, appends fall back to WriteAt.
	Mapped bool
	// MaxAge deletes sealed segments whose last append is older than this,
	// even if readers have not passed them (they skip ahead). Default 0:
	// segments live until every reader has passed them.
	MaxAge time.Duration
	// Encoder encodes the batches of Append (AppendBatch takes batches
	// already encoded). Default: a zstd encoder the log owns.
	Encoder *codec.Encoder
	// Limits bound the batches readers accept. Defaults: codec's.
	Limits codec.Limits
	// Cache, if set, holds decompressed batches for readers that lag
	// behind, shared by every log using it.
	Cache *BatchCache
	// Keyring, if set, seals every batch the log writes (codec format
	// version 2: AES-256-GCM after compression) for Context, which names
	// where the batches belong (a batch moved to another log with another
	// context fails authentication), and opens the sealed batches it
	// reads. With RequireSealed a plain batch reads as corrupt. Sealing
	// happens as a batch is appended, once its offset is known.
	Keyring       *codec.Keyring
	Context       []byte
	RequireSealed bool
	// FS is the file system. Default OSFS.
	FS FS
	// Now is the clock for segment ages. Default time.Now.
	Now func() time.Time
}

const (
	defaultSegmentSize = 64 << 20
	minSegmentSize     = 64 << 10
)

func (o Options) withDefaults() Options {
	if o.SegmentSize == 0 {
		o.SegmentSize = defaultSegmentSize
	}
	o.SegmentSize = max(o.SegmentSize, minSegmentSize)
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
