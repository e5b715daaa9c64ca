package mmap

import "errors"

// The errors of package mmap. Operations wrap them with details; match them
// with errors.Is.
var (
	// ErrClosed: the Log or Reader was closed.
	ErrClosed = errors.New("spillway/mmap: closed")
	// ErrDiskFull: an append needs a new segment and either the log's quota
	// (Options.MaxBytes) or the device has no room for it.
	ErrDiskFull = errors.New("spillway/mmap: disk full")
	// ErrReadOnly: an earlier write or sync failed, so the log no longer
	// accepts appends. The failure is sticky: a sync is never retried and
	// then reported as a success. Reads still work.
	ErrReadOnly = errors.New("spillway/mmap: log is read-only after a failed write or sync")
	// ErrLocked: another Log (in this process or another) has the directory open.
	ErrLocked = errors.New("spillway/mmap: directory is in use by another log")
	// ErrOutOfRange: a reader asked for an offset the log does not hold.
	ErrOutOfRange = errors.New("spillway/mmap: offset out of range")
	// ErrTooLarge: a batch does not fit in an empty segment.
	ErrTooLarge = errors.New("spillway/mmap: batch larger than a segment")
	// ErrCorrupt: a segment holds bytes that are not what the log wrote, or
	// reading its mapping faulted. Open repairs what it finds; readers report
	// what appears later.
	ErrCorrupt = errors.New("spillway/mmap: corrupt segment")
	// ErrMissing: Open found a hole in the log's offsets that no recovery
	// and no SkipTo explains: a segment file was removed behind its back.
	// The error names the offsets and the file expected.
	ErrMissing = errors.New("spillway/mmap: segment missing")
	// ErrNotReady: TryNext found the next batch still being decoded ahead;
	// the reader's OnDecoded callback runs when it is done.
	ErrNotReady = errors.New("spillway/mmap: next batch not decoded yet")
)
