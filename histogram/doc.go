// Package histogram records durations into a fixed-memory, lock-free,
// log-linear histogram (HdrHistogram's bucket layout) and reads percentiles
// from snapshots of it, which merge.
//
// Buckets: every value below 128 ns has a bucket of its own; above, each
// power of two is split into 64 buckets of equal width, up to 2^43 ns (about
// 2 h 26 min; longer values count in the last bucket, and Max stays exact).
// A bucket is at most 1/64 of its lower bound wide, and a percentile is
// reported as its bucket's midpoint, so it is within 1/128 (0.79%) of a
// value that was recorded, at any value. A Histogram is 2,432 counters,
// 19 KiB.
//
// Recording is three atomic operations and never blocks; a Snapshot taken
// while others record is a consistent-enough copy: each counter is exact,
// counters recorded during the copy may or may not be in it.
//
// (HdrHistogram's Go port is not safe for concurrent use, and its
// concurrent Java form takes a lock to read: a recorder shared by a queue's
// receivers needs neither.)
package histogram
