package codec

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Decoder reads batches from untrusted bytes. For any input it returns
// records or an error matching ErrCorrupt, ErrChecksum, ErrTruncated,
// ErrVersion or ErrTooLarge (for sealed batches also ErrKey, or ErrAuth
// with ErrCorrupt); it never panics, always returns, and never allocates
// more than its Limits allow for one batch.
//
// It is safe for concurrent use: its zstd decoder is one long-lived
// klauspost Decoder used only through DecodeAll, with its memory and window
// limits set from Limits. Each caller decodes into its own Batch. Close it
// when no call is in flight.
type Decoder struct {
	limits Limits
	zstd   *zstd.Decoder
	closed atomic.Bool
	// keys open sealed batches (format version 2) in context; without
	// them a sealed batch fails with ErrKey. requireSealed refuses plain
	// ones (ErrNotSealed, with ErrCorrupt).
	keys          *Keyring
	context       []byte
	requireSealed bool
}

// DecoderOption configures a Decoder.
type DecoderOption func(*Decoder)

// WithKeyring makes the Decoder open sealed batches with k's keys, in
// context (the same bytes the batches were sealed with: where they
// belong). With require, it refuses batches that are not sealed: a
// directory written with encryption never reads a plain batch someone put
// there.
func WithKeyring(k *Keyring, context []byte, require bool) DecoderOption {
	return func(d *Decoder) {
		d.keys, d.context, d.requireSealed = k, slices.Clone(context), require
	}
}

// NewDecoder returns a Decoder enforcing limits (zero fields: defaults).
func NewDecoder(limits Limits, opts ...DecoderOption) (*Decoder, error) {
	l := limits.withDefaults()
	z, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0), // up to GOMAXPROCS concurrent DecodeAll calls
		zstd.WithDecoderMaxMemory(uint64(l.MaxRawBytes)),
		zstd.WithDecoderMaxWindow(uint64(max(l.MaxRawBytes, zstd.MinWindowSize))),
		zstd.WithDecodeAllCapLimit(true), // never produce more than cap(dst)
		zstd.IgnoreChecksum(true),        // frames carry none; the batch checksum covers them
	)
	if err != nil {
		return nil, fmt.Errorf("spillway/codec: zstd decoder: %w", err)
	}
	d := &Decoder{limits: l, zstd: z}
	for _, o := range opts {
		o(d)
	}
	return d, nil
}

// Limits returns the limits the decoder enforces.
func (d *Decoder) Limits() Limits { return d.limits }

// Batch is a decoded batch. Reuse one Batch for many Decode calls to decode
// without allocating; it is not safe for concurrent use.
//
// Ownership: Records, and the Key, Value and Headers of every record, alias
// memory that the next Decode into the same Batch overwrites: the Batch's
// own decompression buffer, or, for a batch stored uncompressed, the src
// given to Decode. Copy what must outlive that, or Detach.
type Batch struct {
	Header  BatchHeader
	Records []Record

	payload []byte   // decompressed records, reused
	headers []Header // slab for the records' headers, reused
	sealed  []byte   // a sealed batch's opened payload, reused
}

// Detach hands the memory the records point to over to the caller: the
// next Decode into b decompresses into a new buffer and carves headers from
// a new slab, so the Key, Value and Headers of the records decoded so far
// stay valid. (The Records slice itself is still reused, and a batch stored
// uncompressed still aliases the src it was decoded from.) It costs the
// next Decode an allocation of the batch's size instead of a copy of it.
func (b *Batch) Detach() {
	b.payload, b.headers, b.sealed = nil, nil, nil
}

// Verify checks the batch at the start of src without decompressing it:
// header, limits, length and checksum; a sealed batch's too, without
// opening it (no key is needed). It returns the header and the batch's
// size in bytes. At a run of zero bytes (a zero-filled or preallocated tail,
// or the end of src) it returns io.EOF.
func (d *Decoder) Verify(src []byte) (BatchHeader, int, error) {
	return d.verify(src, false)
}

// verify is Verify; with owned, src is the caller's own memory, which the
// checksum may write while it runs (checksumInPlace).
func (d *Decoder) verify(src []byte, owned bool) (BatchHeader, int, error) {
	var h BatchHeader
	if d.closed.Load() {
		return h, 0, ErrClosed
	}
	if len(src) < HeaderSize {
		if allZero(src) {
			return h, 0, io.EOF
		}
		return h, 0, fmt.Errorf("%w: %d bytes, a header needs %d", ErrTruncated, len(src), HeaderSize)
	}
	b := src[:HeaderSize]
	if string(b[:4]) != magic {
		if allZero(b) {
			return h, 0, io.EOF
		}
		return h, 0, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[:4])
	}
	sealed := b[offVersion] == sealedVersion
	if b[offVersion] != Version && !sealed {
		return h, 0, fmt.Errorf("%w: version %d", ErrVersion, b[offVersion])
	}
	h = BatchHeader{
		Compression: Compression(b[offCodec]),
		Count:       binary.LittleEndian.Uint32(b[offCount:]),
		RawLen:      binary.LittleEndian.Uint32(b[offRawLen:]),
		StoredLen:   binary.LittleEndian.Uint32(b[offStoredLen:]),
		FirstOffset: binary.LittleEndian.Uint64(b[offFirst:]),
		BaseTime:    int64(binary.LittleEndian.Uint64(b[offBaseTime:])),
		Checksum:    binary.LittleEndian.Uint64(b[offChecksum:]),
		Sealed:      sealed,
		KeyID:       sealedKeyID(b),
	}
	flags, reserved := binary.LittleEndian.Uint16(b[offFlags:]), binary.LittleEndian.Uint32(b[offReserved:])
	switch {
	case h.Compression > S2:
		return h, 0, fmt.Errorf("%w: unknown codec %d", ErrCorrupt, h.Compression)
	case !sealed && (flags != 0 || reserved != 0), sealed && flags != flagSealed:
		return h, 0, fmt.Errorf("%w: reserved header bits set", ErrCorrupt)
	case sealed && h.StoredLen < sealOverhead:
		return h, 0, fmt.Errorf("%w: a sealed payload of %d bytes is shorter than its nonce and tag", ErrCorrupt, h.StoredLen)
	case !sealed && d.requireSealed:
		return h, 0, fmt.Errorf("%w: %w: the batch at offset %d is plain where every batch is sealed", ErrCorrupt, ErrNotSealed, h.FirstOffset)
	case int64(h.Count) > int64(d.limits.MaxRecords):
		return h, 0, fmt.Errorf("%w: %d records, limit %d", ErrTooLarge, h.Count, d.limits.MaxRecords)
	case int64(h.RawLen) > int64(d.limits.MaxRawBytes):
		return h, 0, fmt.Errorf("%w: %d raw bytes, limit %d", ErrTooLarge, h.RawLen, d.limits.MaxRawBytes)
	case int64(h.Size()) > int64(d.limits.MaxBatchBytes):
		return h, 0, fmt.Errorf("%w: batch of %d bytes, limit %d", ErrTooLarge, h.Size(), d.limits.MaxBatchBytes)
	case h.Compression == None && h.StoredLen-sealedOverhead(sealed) != h.RawLen:
		return h, 0, fmt.Errorf("%w: uncompressed batch stores %d bytes but claims %d", ErrCorrupt, h.StoredLen, h.RawLen)
	case uint64(h.Count)*minRecordSize > uint64(h.RawLen):
		return h, 0, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorrupt, h.Count, h.RawLen)
	case len(src) < h.Size():
		return h, 0, fmt.Errorf("%w: batch of %d bytes, %d available", ErrTruncated, h.Size(), len(src))
	}
	var sum uint64
	if owned {
		sum = checksumInPlace(src[:h.Size()])
	} else {
		sum = checksum(b, src[HeaderSize:h.Size()])
	}
	if sum != h.Checksum {
		return h, 0, fmt.Errorf("%w: stored %#016x, computed %#016x", ErrChecksum, h.Checksum, sum)
	}
	return h, h.Size(), nil
}

func sealedOverhead(sealed bool) uint32 {
	if sealed {
		return sealOverhead
	}
	return 0
}

// stored returns the version-1 payload of the verified batch src (header
// h): its stored bytes, or, for a sealed batch, their plaintext, opened
// into scratch's storage (grown if need be: it returns it).
func (d *Decoder) stored(src []byte, h BatchHeader, scratch []byte) (payload, out []byte, err error) {
	if src[offVersion] != sealedVersion {
		return src[HeaderSize:h.Size()], scratch, nil
	}
	if d.keys == nil {
		return nil, scratch, fmt.Errorf("%w: the batch at offset %d is sealed with key id %d, and the reader has no keys", ErrKey, h.FirstOffset, binary.LittleEndian.Uint32(src[offReserved:]))
	}
	plain, err := d.keys.open(scratch[:0], src, d.context, h)
	if err != nil {
		return nil, scratch, err
	}
	return plain, plain, nil
}

// Decode decodes the batch at the start of src into b and returns how many
// bytes of src it took. At a run of zero bytes it returns io.EOF. On error b
// holds no records.
func (d *Decoder) Decode(src []byte, b *Batch) (int, error) {
	b.Records = b.Records[:0]
	h, n, err := d.Verify(src)
	if err != nil {
		return 0, err
	}
	b.Header = h
	stored, sealed, err := d.stored(src[:n], h, b.sealed)
	b.sealed = sealed
	if err != nil {
		return 0, err
	}
	var raw []byte
	switch h.Compression {
	case None:
		raw = stored
	case Zstd:
		// The slack past RawLen lets zstd use its fast copies, which may
		// write a few bytes past the end, instead of its safe ones; the
		// length check below still holds the output to RawLen.
		if cap(b.payload) < int(h.RawLen)+zstdSlack {
			b.payload = make([]byte, 0, int(h.RawLen)+zstdSlack)
		}
		out, err := d.zstd.DecodeAll(stored, b.payload[:0:int(h.RawLen)+zstdSlack])
		if err != nil {
			return 0, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		if len(out) != int(h.RawLen) {
			return 0, fmt.Errorf("%w: zstd payload decompressed to %d bytes, header says %d", ErrCorrupt, len(out), h.RawLen)
		}
		raw = out
	case S2:
		if n, err := s2.DecodedLen(stored); err != nil || n != int(h.RawLen) {
			return 0, fmt.Errorf("%w: s2 payload of %d bytes (%v), header says %d", ErrCorrupt, n, err, h.RawLen)
		}
		if cap(b.payload) < int(h.RawLen) {
			b.payload = make([]byte, 0, h.RawLen)
		}
		out, err := s2.Decode(b.payload[:h.RawLen], stored)
		if err != nil {
			return 0, fmt.Errorf("%w: s2: %v", ErrCorrupt, err)
		}
		raw = out
	}
	if cap(b.Records) < int(h.Count) {
		b.Records = make([]Record, 0, h.Count)
	}
	p := recordParser{b: raw, slab: b.headers[:0], first: true, prev: h.BaseTime}
	recs := b.Records[:h.Count]
	for i := range recs {
		if err := p.next(&recs[i]); err != nil {
			b.headers = p.slab
			return 0, err
		}
	}
	b.headers = p.slab
	if p.off != len(raw) {
		return 0, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(raw)-p.off)
	}
	b.Records = recs
	return n, nil
}

// AppendRecords decodes the batch at the start of src, as Decode does, and
// appends its records to dst, whose storage then holds them; headers are
// carved from slab, which it returns grown. src is the caller's to hand
// over: the call may write it while it runs (and puts it back), and the
// records point into it for an uncompressed batch, into memory allocated
// for them for a compressed one; slab must not be reused for a later call
// while they are kept. It returns dst, slab, the batch's header and how many
// bytes of src it took; on error, dst and slab as they were.
func (d *Decoder) AppendRecords(dst []Record, slab []Header, src []byte) ([]Record, []Header, BatchHeader, int, error) {
	h, n, err := d.verify(src, true)
	if err != nil {
		return dst, slab, h, 0, err
	}
	raw := src[HeaderSize:n]
	if src[offVersion] == sealedVersion && h.Compression == None {
		// Opened into memory of its own: the records point into it.
		if raw, _, err = d.stored(src[:n], h, nil); err != nil {
			return dst, slab, h, 0, err
		}
	} else if h.Compression != None {
		var b Batch
		if _, err := d.Decode(src[:n], &b); err != nil {
			return dst, slab, h, 0, err
		}
		return append(dst, b.Records...), slab, h, n, nil
	}
	start := len(dst)
	dst = slices.Grow(dst, int(h.Count))
	recs := dst[start : start+int(h.Count)]
	p := recordParser{b: raw, slab: slab, first: true, prev: h.BaseTime}
	for i := range recs {
		if err := p.next(&recs[i]); err != nil {
			clear(recs)
			return dst[:start], slab, h, 0, err
		}
	}
	if p.off != len(raw) {
		clear(recs)
		return dst[:start], slab, h, 0, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(raw)-p.off)
	}
	return dst[:start+int(h.Count)], p.slab, h, n, nil
}

// Close releases the zstd decoder. It is idempotent; later calls return
// ErrClosed.
func (d *Decoder) Close() error {
	if !d.closed.Swap(true) {
		d.zstd.Close()
	}
	return nil
}

// zstdSlack is the room past a batch's RawLen given to zstd's DecodeAll
// (more than the 16 bytes its fast copies may overrun).
const zstdSlack = 64
