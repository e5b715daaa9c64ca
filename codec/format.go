package codec

import (
	"encoding/binary"
	"fmt"
)

// The batch format. These values are frozen: changing any of them changes
// the bytes on disk and needs a new Version (see FORMAT.md).
//
//	offset size field
//	     0    4 magic        "SPWB"
//	     4    1 version      1
//	     5    1 codec        0 none, 1 zstd, 2 s2
//	     6    2 flags        0; readers reject other values
//	     8    4 count        number of records
//	    12    4 rawLen       bytes of the encoded records, uncompressed
//	    16    4 storedLen    bytes of payload after the header
//	    20    4 reserved     0; readers reject other values
//	    24    8 firstOffset  offset of the first record
//	    32    8 baseTime     timestamp of the first record, unix ns
//	    40    8 checksum     xxhash64 of bytes [0, 40) and the payload
//	    48      payload      storedLen bytes: the records, compressed by codec
//
// All integers are little-endian.
const (
	// HeaderSize is the size of a batch header in bytes.
	HeaderSize = 48
	// Version is the format version this package writes and reads.
	Version = 1

	magic = "SPWB"

	offVersion   = 4
	offCodec     = 5
	offFlags     = 6
	offCount     = 8
	offRawLen    = 12
	offStoredLen = 16
	offReserved  = 20
	offFirst     = 24
	offBaseTime  = 32
	offChecksum  = 40
)

// Compression names the codec of a batch's payload. The values are the
// codec byte of the header and are frozen.
type Compression uint8

const (
	None Compression = 0 // stored as is
	Zstd Compression = 1 // zstd frame (klauspost/compress/zstd), no frame checksum
	S2   Compression = 2 // S2 block (klauspost/compress/s2)
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Zstd:
		return "zstd"
	case S2:
		return "s2"
	}
	return "unknown"
}

// BatchHeader is the decoded header of a batch.
type BatchHeader struct {
	Compression Compression // codec of the stored payload
	Count       uint32      // number of records
	RawLen      uint32      // bytes of the encoded records before compression
	StoredLen   uint32      // bytes of payload after the header
	FirstOffset uint64      // offset of the first record; record i has FirstOffset+i
	BaseTime    int64       // timestamp of the first record, unix ns
	Checksum    uint64      // xxhash64 of the header's first 40 bytes and the payload
	// Sealed: format version 2, the payload encrypted (see Keyring)
	// under key KeyID; StoredLen then counts the nonce and the tag.
	Sealed bool
	KeyID  uint32
}

// Size returns the size of the whole batch: header and payload.
func (h BatchHeader) Size() int { return HeaderSize + int(h.StoredLen) }

// putHeader writes h, except the checksum, into b[:HeaderSize].
func putHeader(b []byte, h BatchHeader) {
	copy(b, magic)
	b[offVersion] = Version
	b[offCodec] = byte(h.Compression)
	binary.LittleEndian.PutUint16(b[offFlags:], 0)
	binary.LittleEndian.PutUint32(b[offCount:], h.Count)
	binary.LittleEndian.PutUint32(b[offRawLen:], h.RawLen)
	binary.LittleEndian.PutUint32(b[offStoredLen:], h.StoredLen)
	binary.LittleEndian.PutUint32(b[offReserved:], 0)
	binary.LittleEndian.PutUint64(b[offFirst:], h.FirstOffset)
	binary.LittleEndian.PutUint64(b[offBaseTime:], uint64(h.BaseTime))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Restamp rewrites the first offset of the encoded batch at the start of
// batch, and its checksum, in place. It lets a writer compress batches in
// parallel and assign offsets only when it appends them in order. It
// checks only that batch holds a header and the payload it announces.
func Restamp(batch []byte, first uint64) error {
	if len(batch) < HeaderSize || string(batch[:4]) != magic {
		return fmt.Errorf("%w: not a batch", ErrCorrupt)
	}
	stored := int(binary.LittleEndian.Uint32(batch[offStoredLen:]))
	if len(batch) < HeaderSize+stored {
		return fmt.Errorf("%w: batch of %d bytes, %d available", ErrTruncated, HeaderSize+stored, len(batch))
	}
	binary.LittleEndian.PutUint64(batch[offFirst:], first)
	binary.LittleEndian.PutUint64(batch[offChecksum:], checksum(batch, batch[HeaderSize:HeaderSize+stored]))
	return nil
}

// PeekHeader decodes the header at the start of b without checking limits,
// length or checksum: for a writer inspecting its own batches. Readers of
// untrusted bytes use Decoder.Verify.
func PeekHeader(b []byte) (BatchHeader, error) {
	if len(b) < HeaderSize || string(b[:4]) != magic {
		return BatchHeader{}, fmt.Errorf("%w: not a batch", ErrCorrupt)
	}
	return BatchHeader{
		Compression: Compression(b[offCodec]),
		Count:       binary.LittleEndian.Uint32(b[offCount:]),
		RawLen:      binary.LittleEndian.Uint32(b[offRawLen:]),
		StoredLen:   binary.LittleEndian.Uint32(b[offStoredLen:]),
		FirstOffset: binary.LittleEndian.Uint64(b[offFirst:]),
		BaseTime:    int64(binary.LittleEndian.Uint64(b[offBaseTime:])),
		Checksum:    binary.LittleEndian.Uint64(b[offChecksum:]),
		Sealed:      b[offVersion] == sealedVersion,
		KeyID:       sealedKeyID(b),
	}, nil
}

// sealedKeyID is the key id of a sealed batch's header b, 0 for a plain one.
func sealedKeyID(b []byte) uint32 {
	if b[offVersion] != sealedVersion {
		return 0
	}
	return binary.LittleEndian.Uint32(b[offReserved:])
}

// BatchSpan reads from the header at the start of b what a reader walking
// from batch to batch needs: the first record's offset, the record count
// and the batch's whole size. Like PeekHeader it checks only the magic (ok
// is false without it, or with fewer than HeaderSize bytes); the batch is
// verified when it is decoded.
func BatchSpan(b []byte) (first uint64, count uint32, size int, ok bool) {
	if len(b) < HeaderSize || string(b[:4]) != magic {
		return 0, 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[offFirst:]), binary.LittleEndian.Uint32(b[offCount:]),
		HeaderSize + int(binary.LittleEndian.Uint32(b[offStoredLen:])), true
}
