package spillway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// A Persistent queue or topic keeps its duplicate window across a reopen:
// a message sent with an ID carries it on disk, in a last header of its
// own (idHeader: the send time, 8 bytes little-endian, then the id), which
// receivers never see; the open reads the ids of the window back from the
// logs (rebuildDedup), and the housekeeping (a topic's retention) keeps,
// while ids are used, the segments that may hold ids still within the
// window (even once their messages are settled or every subscription
// passed them: a retry after the message was consumed is still a
// duplicate).

// idHeader is the key of the header that holds a message's ID on disk; the
// NUL keeps it apart from any header a user would name.
const idHeader = "\x00spillway-id"

func appendIDValue(b []byte, at int64, id string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(at))
	return append(b, id...)
}

// withoutID returns hs without a last ID header.
func withoutID(hs []codec.Header) []codec.Header {
	if n := len(hs); n > 0 && string(hs[n-1].Key) == idHeader {
		return hs[:n-1]
	}
	return hs
}

// recordID returns the ID a record carries and when it was sent.
func recordID(r *codec.Record) (id string, at int64, ok bool) {
	n := len(r.Headers)
	if n == 0 || !bytes.Equal(r.Headers[n-1].Key, []byte(idHeader)) || len(r.Headers[n-1].Value) < 8 {
		return "", 0, false
	}
	v := r.Headers[n-1].Value
	return string(v[8:]), int64(binary.LittleEndian.Uint64(v)), true
}

// rebuildDedup puts back in l's window the ids a shard's log holds that
// were sent within it (at now, unix ns), reading the segments whose last
// append is within the window (a segment's last append is at or after the
// sends it holds).
func (l *life) rebuildDedup(log *mmap.Log, now int64) error {
	if l.dedup == nil {
		return nil
	}
	cutoff := now - l.dedup.window
	from := log.NextOffset()
	for _, seg := range log.Segments() {
		if seg.LastAt >= cutoff || !seg.Sealed {
			from = seg.Base
			break
		}
	}
	return scanRecords(log, from, log.NextOffset(), func(_ uint64, r *codec.Record) {
		if id, at, ok := recordID(r); ok && at >= cutoff {
			l.dedup.restore(id, at)
			l.idsUsed.Store(true)
		}
	})
}

// scanRecords calls fn with every record of log in [from, to) that can
// be read (a corrupt batch is skipped, as recovery does), and its offset;
// the record's bytes are valid only during the call.
func scanRecords(log *mmap.Log, from, to uint64, fn func(off uint64, r *codec.Record)) error {
	from = max(from, log.FirstOffset())
	to = min(to, log.NextOffset())
	if from >= to {
		return nil
	}
	r, err := log.NewPeekReader(from)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	var recs []codec.Record
	for r.Offset() < to {
		first, got, err := r.ReadRecords(recs, to, 1<<20)
		recs = got
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !errors.Is(err, mmap.ErrCorrupt) {
			return err
		}
		for i := range recs {
			fn(first+uint64(i), &recs[i])
		}
	}
	return nil
}

// dedupFloor returns the first offset of the segments of segs that the
// duplicate window still needs at now (their last append within it), or
// floor.
func (l *life) dedupFloor(segs []mmap.SegmentInfo, floor uint64, now int64) uint64 {
	if l.dedup == nil || !l.idsUsed.Load() {
		return floor
	}
	cutoff := now - l.dedup.window
	for _, seg := range segs {
		if seg.LastAt >= cutoff {
			return min(floor, seg.Base)
		}
	}
	return floor
}
