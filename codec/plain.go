package codec

import (
	"encoding/binary"
	"fmt"
)

// PlainSize returns the exact size of recs encoded as one uncompressed
// batch, header included: what AppendPlain appends.
func PlainSize(recs []Record) int {
	n := HeaderSize
	var prev int64
	if len(recs) > 0 {
		prev = recs[0].Timestamp
	}
	for i := range recs {
		n += recordSize(&recs[i], prev)
		prev = recs[i].Timestamp
	}
	return n
}

// AppendPlain encodes recs as one uncompressed batch (codec None) whose
// first record has offset first and appends it to dst, in one pass over the
// records: the path of a writer that must have each batch in place at
// once, and for which compression is not worth its time. It fails with
// ErrTooLarge, dst unchanged, only where the format's 32-bit fields cannot
// hold the batch; callers enforce their own Limits. With cap(dst)-len(dst)
// at least PlainSize(recs), it writes into dst's array and allocates
// nothing.
func AppendPlain(dst []byte, first uint64, recs []Record) ([]byte, error) {
	if uint64(len(recs)) > 1<<32-1 {
		return dst, fmt.Errorf("%w: %d records", ErrTooLarge, len(recs))
	}
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	var base, prev int64
	if len(recs) > 0 {
		base = recs[0].Timestamp
		prev = base
	}
	for i := range recs {
		dst = appendRecord(dst, &recs[i], prev)
		prev = recs[i].Timestamp
	}
	raw := len(dst) - start - HeaderSize
	if uint64(raw) > 1<<32-1 {
		return dst[:start], fmt.Errorf("%w: %d bytes of records", ErrTooLarge, raw)
	}
	h := dst[start : start+HeaderSize]
	putHeader(h, BatchHeader{
		Compression: None,
		Count:       uint32(len(recs)),
		RawLen:      uint32(raw),
		StoredLen:   uint32(raw),
		FirstOffset: first,
		BaseTime:    base,
	})
	binary.LittleEndian.PutUint64(h[offChecksum:], checksumInPlace(dst[start:]))
	return dst, nil
}
