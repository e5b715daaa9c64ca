// Package codec is Spillway's frozen batch format: how spilled messages are
// stored. A batch is a fixed 48-byte header followed by the batch's records,
// compressed with zstd (the default), S2, or not at all:
//
//	+------+---+---+-----+-----+------+--------+----------+---------+----------+------------------+
//	| SPWB | v | c | flg | cnt | raw  | stored | reserved | first   | baseTime | xxhash64         |  payload ...
//	|  4   | 1 | 1 |  2  |  4  |  4   |   4    |    4     | offset 8|    8     | [0,40)+payload 8 |  stored bytes
//	+------+---+---+-----+-----+------+--------+----------+---------+----------+------------------+
//
// Every byte is documented in FORMAT.md at the repository root, and golden
// files in testdata/ freeze it: a change that alters the bytes fails a test
// and must come with a new Version.
//
// The API is append-style and allocation-free in steady state:
//
//	enc, _ := codec.NewEncoder()                    // zstd "fastest"; safe for concurrent use
//	buf, err := enc.AppendBatch(buf[:0], first, recs)
//
//	dec, _ := codec.NewDecoder(codec.Limits{})      // default limits; safe for concurrent use
//	var b codec.Batch                               // one per goroutine, reused
//	n, err := dec.Decode(buf, &b)                   // b.Records alias b's buffers or buf
//
// Decoding treats its input as untrusted. It checks the header against
// Limits before allocating or decompressing, verifies the checksum before
// parsing, bounds the zstd decoder's memory and window by the limits, and
// accepts only the canonical encoding of records, so a batch that decodes
// re-encodes to the same record bytes. It never panics and always returns.
// A run of zero bytes where a header should start reads as the end of the
// data (io.EOF), which is what a preallocated or zero-filled file tail holds.
//
// Encoders and Decoders are long-lived: create one of each per process (or
// per configuration) and Close them when done. Neither owns goroutines.
package codec
