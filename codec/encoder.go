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
	scratch     sync.Pool     // *[]byte: encoded records before compression
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
	e.scratch.New = func() any { return new([]byte) }
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
	var base int64
	if len(recs) > 0 {
		base = recs[0].Timestamp
	}
	sp := e.scratch.Get().(*[]byte)
	defer e.scratch.Put(sp)
	raw := (*sp)[:0]
	for i := range recs {
		raw = appendRecord(raw, &recs[i], base)
		if len(raw) > e.limits.MaxRawBytes {
			*sp = raw
			return dst, fmt.Errorf("%w: more than %d bytes of records", ErrTooLarge, e.limits.MaxRawBytes)
		}
	}
	*sp = raw

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
		Count:       uint32(len(recs)),
		RawLen:      uint32(len(raw)),
		StoredLen:   uint32(stored),
		FirstOffset: first,
		BaseTime:    base,
	})
	binary.LittleEndian.PutUint64(h[offChecksum:], checksum(h, dst[start+HeaderSize:]))
	return dst, nil
}

// checksum is xxhash64 over the first 40 bytes of the header and the payload.
func checksum(header, payload []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.Write(header[:offChecksum])
	d.Write(payload)
	return d.Sum64()
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
