// Package mmap stores spilled batches: fallocate-reserved, mmap-backed
// segment files, and a segmented Log over them.
//
// # Files
//
// A log directory holds segment files named after the first offset they
// hold (%020d.seg), a LOCK file that one Log at a time holds with flock, and
// after a repair, sidecar files (*.corrupt) with the bytes recovery dropped.
// Files are created 0600, the directory 0700. A segment file is a 64-byte
// header (see segment.go) followed by codec batches (FORMAT.md) back to
// back, then zeros up to the size reserved when the file was created.
//
// # Space and SIGBUS
//
// A segment's whole size is reserved with fallocate when it is created, so
// a full device fails the append that needs the segment (ErrDiskFull),
// before anything is acknowledged in it. Appends are written with pwrite,
// never through the mapping, so even on a file system without fallocate a
// full device is a write error, not a SIGBUS. Options.MaxBytes adds a quota
// of the log's own.
//
// # Where mapped memory is read
//
// Each segment is mapped read-only and shared, so the mapping sees what
// pwrite wrote. Mapped bytes are read in exactly two places: recovery's scan
// at Open, and a Reader's decoding of one batch at a time (a compressed
// batch is decompressed straight out of the mapping, an uncompressed one is
// copied first), both onto the heap. Both run under
// debug.SetPanicOnFault, so a fault there (an I/O error under the mapping,
// a file cut short behind the log's back) becomes an ErrCorrupt error
// rather than a crash, and what callers decode and keep lives on the heap.
// A Reader passes over a batch it cannot decode (see Reader.Next). A reader holds a reference on its segment, and a segment is
// unmapped (and, once retired, removed) only at its last release: no file
// is unmapped under a reader, and no mapped file is ever truncated.
//
// # Durability
//
// SyncNever leaves write-back to the kernel: a crash of the process loses
// nothing acknowledged, a power loss may lose anything not yet written back.
// SyncInterval(d) fdatasyncs dirty segments every d from a goroutine the log
// owns. SyncAlways fdatasyncs before Append returns. A new segment's header
// and reservation, and the directory entry, are synced before the segment
// is used under either syncing policy. The first failed write or sync makes
// the log read-only for good (ErrReadOnly, wrapping the failure): after
// fsyncgate, a failed sync is never retried and then reported as success.
//
// # Crash recovery
//
// Open scans every segment and verifies every batch (checksum, offsets in
// sequence). The first invalid run of bytes in a segment is handled without
// a human:
//
//  1. If a valid batch follows it in the same file, the run is corruption
//     in the middle: the run is written to a sidecar file, the valid
//     remainder is written to a new segment named after its first offset
//     (temporary file, fsync, rename, directory fsync), and only then is
//     the run zeroed in the original file. A crash at any step leaves
//     files that the next Open repairs the same way.
//  2. Otherwise it is the segment's tail (a torn write): it goes to a
//     sidecar and is zeroed.
//
// Open reports every dropped run in its Recovery: bytes, batches and the
// exact offsets lost. Readers later jump over the gaps and count them.
//
// # Retention
//
// Sealed segments are retired once every registered Reader has passed them,
// or, with Options.MaxAge, once their last append is older than that. The
// active segment is never retired: it carries the next offset across
// restarts.
package mmap
