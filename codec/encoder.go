package codec

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Encoder writes batches. It is safe for concurrent use: its zstd encoder is
// one long-lived klauspost Encoder used only through the stateless,
// concurrency-safe EncodeAll, and each call takes its scratch buffer from a
// pool. In steady state (dst with room, warmed pool) encoding allocates
// nothing. Close it when no call is in flight; it owns no goroutines, but
// the zstd encoder holds memory until then.
type Encoder struct {
	compression Compression
	limits      Limits
	zstd        *zstd.Encoder // nil unless compression is Zstd
	scratch     sync.Pool     // *RawBatch: encoded records before compression
	closed      atomic.Bool
}

// EncoderOption configures an Encoder.
type EncoderOption func(*encoderConfig)

type encoderConfig struct {
	compression Compression
	level       zstd.EncoderLevel
	limits      Limits
	concurrency int
}

// WithCompression selects the codec: Zstd (the default), S2 or None.
func WithCompression(c Compression) EncoderOption {
	return func(o *encoderConfig) { o.compression = c }
}

// WithZstdLevel sets the zstd level. Default zstd.SpeedFastest.
func WithZstdLevel(l zstd.EncoderLevel) EncoderOption {
	return func(o *encoderConfig) { o.level = l }
}

// WithEncoderLimits sets the limits the encoder refuses to exceed; use the
// readers' limits. Default DefaultLimits().
func WithEncoderLimits(l Limits) EncoderOption {
	return func(o *encoderConfig) { o.limits = l }
}

// WithEncoderConcurrency bounds how many batches compress at once (each
// holds a zstd encoder state of a few MiB). Default GOMAXPROCS.
func WithEncoderConcurrency(n int) EncoderOption {
	return func(o *encoderConfig) { o.concurrency = n }
}

// NewEncoder returns an Encoder.
func NewEncoder(opts ...EncoderOption) (*Encoder, error) {
	cfg := encoderConfig{compression: Zstd, level: zstd.SpeedFastest}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Encoder{compression: cfg.compression, limits: cfg.limits.withDefaults()}
	e.scratch.New = func() any { return new(RawBatch) }
	switch cfg.compression {
	case None, S2:
	case Zstd:
		zopts := []zstd.EOption{
			zstd.WithEncoderLevel(cfg.level),
			zstd.WithEncoderCRC(false), // the batch checksum covers the payload
			zstd.WithZeroFrames(true),  // an empty payload is still a valid frame
		}
		if cfg.concurrency > 0 {
			zopts = append(zopts, zstd.WithEncoderConcurrency(cfg.concurrency))
		}
		z, err := zstd.NewWriter(nil, zopts...)
		if err != nil {
			return nil, fmt.Errorf("spillway/codec: zstd encoder: %w", err)
		}
		e.zstd = z
	default:
		return nil, fmt.Errorf("spillway/codec: unknown compression %d", cfg.compression)
	}
	return e, nil
}

// Compression returns the codec the encoder uses. A batch that does not
// shrink is stored with None whatever this says.
func (e *Encoder) Compression() Compression { return e.compression }

var zeroHeader [HeaderSize]byte

// AppendBatch encodes recs as one batch whose first record has offset first,
// appends it to dst and returns the extended slice. It returns ErrTooLarge,
// and dst unchanged, if the batch would exceed the encoder's limits.
func (e *Encoder) AppendBatch(dst []byte, first uint64, recs []Record) ([]byte, error) {
	if e.closed.Load() {
		return dst, ErrClosed
	}
	if len(recs) > e.limits.MaxRecords {
		return dst, fmt.Errorf("%w: %d records, limit %d", ErrTooLarge, len(recs), e.limits.MaxRecords)
	}
	rb := e.scratch.Get().(*RawBatch)
	defer e.scratch.Put(rb)
	rb.Reset()
	for i := range recs {
		rb.Add(&recs[i])
		if rb.Len() > e.limits.MaxRawBytes {
			return dst, fmt.Errorf("%w: more than %d bytes of records", ErrTooLarge, e.limits.MaxRawBytes)
		}
	}
	return e.AppendRaw(dst, first, rb)
}

// AppendRaw compresses the records gathered in rb as one batch whose first
// record has offset first and appends it to dst. rb is not changed. Like
// AppendBatch it refuses, with ErrTooLarge and dst unchanged, a batch beyond
// the encoder's limits.
func (e *Encoder) AppendRaw(dst []byte, first uint64, rb *RawBatch) ([]byte, error) {
	if e.closed.Load() {
		return dst, ErrClosed
	}
	raw := rb.raw
	switch {
	case rb.count > e.limits.MaxRecords:
		return dst, fmt.Errorf("%w: %d records, limit %d", ErrTooLarge, rb.count, e.limits.MaxRecords)
	case len(raw) > e.limits.MaxRawBytes:
		return dst, fmt.Errorf("%w: %d bytes of records, limit %d", ErrTooLarge, len(raw), e.limits.MaxRawBytes)
	}
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	codec := e.compression
	switch codec {
	case Zstd:
		dst = e.zstd.EncodeAll(raw, dst)
	case S2:
		need := s2.MaxEncodedLen(len(raw))
		dst = slices.Grow(dst, need)
		n := len(s2.Encode(dst[len(dst):len(dst)+need], raw))
		dst = dst[:len(dst)+n]
	}
	if codec == None || len(dst)-start-HeaderSize >= len(raw) {
		codec = None
		dst = append(dst[:start+HeaderSize], raw...)
	}
	stored := len(dst) - start - HeaderSize
	if HeaderSize+stored > e.limits.MaxBatchBytes {
		return dst[:start], fmt.Errorf("%w: batch of %d bytes, limit %d", ErrTooLarge, HeaderSize+stored, e.limits.MaxBatchBytes)
	}
	h := dst[start : start+HeaderSize]
	putHeader(h, BatchHeader{
		Compression: codec,
		Count:       uint32(rb.count),
		RawLen:      uint32(len(raw)),
		StoredLen:   uint32(stored),
		FirstOffset: first,
		BaseTime:    rb.base,
	})
	binary.LittleEndian.PutUint64(h[offChecksum:], checksum(h, dst[start+HeaderSize:]))
	return dst, nil
}

// RawBatch gathers records for one batch, encoded but not yet compressed:
// a writer can add records as they come (copying their bytes once) and
// leave the compression to another goroutine (Encoder.AppendRaw). Not safe
// for concurrent use; the zero value is empty and ready.
type RawBatch struct {
	raw   []byte
	count int
	base  int64 // the first record's timestamp
	prev  int64 // the last record's timestamp
}

// Add encodes r into the batch. r's bytes are copied.
func (rb *RawBatch) Add(r *Record) {
	if rb.count == 0 {
		rb.base, rb.prev = r.Timestamp, r.Timestamp
	}
	rb.raw = appendRecord(rb.raw, r, rb.prev)
	rb.prev = r.Timestamp
	rb.count++
}

// Len returns the encoded size of the records so far, in bytes.
func (rb *RawBatch) Len() int { return len(rb.raw) }

// Count returns the number of records so far.
func (rb *RawBatch) Count() int { return rb.count }

// Reset empties the batch, keeping its memory.
func (rb *RawBatch) Reset() { rb.raw, rb.count, rb.base, rb.prev = rb.raw[:0], 0, 0, 0 }

// checksum is xxhash64 over the first 40 bytes of the header and the payload.
func checksum(header, payload []byte) uint64 {
	if len(payload) <= smallPayload {
		// One pass over a copy costs less than a Digest's two writes,
		// which buffer and merge, for the small batches of one message.
		var buf [offChecksum + smallPayload]byte
		copy(buf[:], header[:offChecksum])
		n := copy(buf[offChecksum:], payload)
		return xxhash.Sum64(buf[:offChecksum+n])
	}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write(header[:offChecksum]) // a Digest's Write never fails
	_, _ = d.Write(payload)
	return d.Sum64()
}

// smallPayload is the largest payload checksum copies next to the header.
const smallPayload = 472

// checksumInPlace is checksum for a batch laid out whole in b, header then
// payload, which the caller owns: it moves the header's first 40 bytes
// next to the payload, hashes the two in one pass, and puts back the bytes
// it moved over. Nothing else may read b meanwhile.
func checksumInPlace(b []byte) uint64 {
	var saved [HeaderSize - 8]byte
	copy(saved[:], b[8:HeaderSize])
	copy(b[8:HeaderSize], b[:offChecksum])
	sum := xxhash.Sum64(b[8:])
	copy(b[8:HeaderSize], saved[:])
	return sum
}

// Close releases the zstd encoder. It is idempotent; later calls to
// AppendBatch return ErrClosed.
func (e *Encoder) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	if e.zstd != nil {
		return e.zstd.Close()
	}
	return nil
}
