package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// A sealed batch (format version 2) is a version-1 batch whose payload is
// encrypted and authenticated with AES-256-GCM, after compression:
//
//	offset size field
//	     0    4 magic        "SPWB"
//	     4    1 version      2
//	     5    1 codec        of the plaintext payload: 0 none, 1 zstd, 2 s2
//	     6    2 flags        1: sealed with AES-256-GCM; readers reject others
//	     8    4 count        number of records
//	    12    4 rawLen       bytes of the encoded records, uncompressed
//	    16    4 storedLen    bytes of payload after the header: 12 + n + 16
//	    20    4 keyID        the key the payload is sealed with
//	    24    8 firstOffset  offset of the first record
//	    32    8 baseTime     timestamp of the first record, unix ns
//	    40    8 checksum     xxhash64 of bytes [0, 40) and the payload
//	    48   12 nonce
//	    60    n ciphertext   the version-1 payload (compressed records), encrypted
//	  60+n   16 tag          GCM's authentication tag
//
// The additional authenticated data is "SPWB-AAD", the uvarint length of the
// caller's context, the context (where the batch belongs: a directory's
// identity and a shard, say), and header bytes [0, 40): a batch moved to
// another place, another offset, or re-labelled with another key id or
// codec fails authentication. The checksum still covers the stored bytes,
// so that torn tails and rot are found without the keys.
//
// Nonces are never reused under one key: each Keyring draws a random 8-byte
// prefix and counts batches in the last 4 bytes, and draws a new prefix
// before the count wraps. Two prefixes collide with probability about
// n²/2⁶⁵ after n draws (each process, and each 2³² batches of one).
const (
	sealedVersion = 2
	flagSealed    = 1
	nonceSize     = 12
	tagSize       = 16
	sealOverhead  = nonceSize + tagSize
	keySize       = 32
	aadMagic      = "SPWB-AAD"
)

// Keyring holds the AES-256 keys batches are sealed with (Current) and
// opened with (any of them: keys being rotated out stay readable). It is
// safe for concurrent use. Keys are never written anywhere, logged or put
// in an error.
type Keyring struct {
	aeads   map[uint32]cipher.AEAD
	current uint32

	mu     sync.Mutex
	prefix [8]byte // random; redrawn before count wraps
	count  uint32
	fresh  bool // prefix drawn
	// nonceFn, if set (tests), fills the nonce instead.
	nonceFn func(nonce []byte)
}

// NewKeyring returns a Keyring over keys (id → 32-byte key) that seals with
// the key current. It copies nothing it does not need: the keys are
// expanded into AES key schedules here.
func NewKeyring(keys map[uint32][]byte, current uint32) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("%w: the current key id %d is not among the keys", ErrKey, current)
	}
	k := &Keyring{aeads: make(map[uint32]cipher.AEAD, len(keys)), current: current}
	for id, key := range keys {
		if len(key) != keySize {
			return nil, fmt.Errorf("%w: key id %d has %d bytes, AES-256 needs %d", ErrKey, id, len(key), keySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%w: key id %d: %v", ErrKey, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: key id %d: %v", ErrKey, id, err)
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// Current returns the id new batches are sealed with.
func (k *Keyring) Current() uint32 { return k.current }

// IDs returns the ids of the keys the Keyring holds, sorted.
func (k *Keyring) IDs() []uint32 { return slices.Sorted(maps.Keys(k.aeads)) }

// KeyCheck returns a value that identifies key id without revealing it
// (the first 8 bytes of HMAC-SHA256 under the key of a fixed text), for a
// directory to record which key it was written with and tell a wrong key
// at open. It fails with ErrKey if the Keyring has no such key.
func KeyCheck(keys map[uint32][]byte, id uint32) ([]byte, error) {
	key, ok := keys[id]
	if !ok || len(key) != keySize {
		return nil, fmt.Errorf("%w: no 32-byte key with id %d", ErrKey, id)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("spillway key check v1"))
	return m.Sum(nil)[:8], nil
}

// nonce fills n with the next nonce.
func (k *Keyring) nonce(n []byte) error {
	if k.nonceFn != nil {
		k.nonceFn(n)
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.fresh || k.count == 1<<32-1 {
		if _, err := rand.Read(k.prefix[:]); err != nil {
			return fmt.Errorf("spillway/codec: drawing a nonce prefix: %w", err)
		}
		k.count, k.fresh = 0, true
	}
	copy(n, k.prefix[:])
	binary.LittleEndian.PutUint32(n[8:], k.count)
	k.count++
	return nil
}

// adPool holds scratch for the additional authenticated data: passed to
// the AEAD through an interface, a stack array would escape, one
// allocation per batch.
var adPool = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// aad returns the additional authenticated data of the sealed header hdr
// (its first 40 bytes) in context.
func aad(dst, context, hdr []byte) []byte {
	dst = append(dst, aadMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(context)))
	dst = append(dst, context...)
	return append(dst, hdr[:offChecksum]...)
}

// SealedSize returns the size of the batch of plainSize bytes sealed.
func SealedSize(plainSize int) int { return plainSize + sealOverhead }

// Seal appends to dst the version-1 batch at the start of batch sealed
// under the current key for context (format version 2), and returns it.
// batch must be one this process encoded (it is not verified); a batch
// sealed already is refused. dst and batch must not overlap.
func (k *Keyring) Seal(dst, batch, context []byte) ([]byte, error) {
	h, err := PeekHeader(batch)
	if err != nil {
		return dst, err
	}
	if batch[offVersion] != Version {
		return dst, fmt.Errorf("%w: sealing a batch of version %d", ErrVersion, batch[offVersion])
	}
	if len(batch) < h.Size() {
		return dst, fmt.Errorf("%w: batch of %d bytes, %d available", ErrTruncated, h.Size(), len(batch))
	}
	if uint64(h.StoredLen)+sealOverhead > 1<<32-1 {
		return dst, fmt.Errorf("%w: a payload of %d bytes cannot be sealed", ErrTooLarge, h.StoredLen)
	}
	aead := k.aeads[k.current]
	start := len(dst)
	dst = slices.Grow(dst, h.Size()+sealOverhead)[:start+HeaderSize+nonceSize]
	hdr := dst[start : start+HeaderSize]
	copy(hdr, batch[:HeaderSize])
	hdr[offVersion] = sealedVersion
	binary.LittleEndian.PutUint16(hdr[offFlags:], flagSealed)
	binary.LittleEndian.PutUint32(hdr[offStoredLen:], h.StoredLen+sealOverhead)
	binary.LittleEndian.PutUint32(hdr[offReserved:], k.current)
	nonce := dst[start+HeaderSize : start+HeaderSize+nonceSize]
	if err := k.nonce(nonce); err != nil {
		return dst[:start], err
	}
	adp := adPool.Get().(*[]byte)
	ad := aad((*adp)[:0], context, hdr)
	dst = aead.Seal(dst, nonce, batch[HeaderSize:h.Size()], ad)
	*adp = ad[:0]
	adPool.Put(adp)
	out := dst[start:]
	binary.LittleEndian.PutUint64(out[offChecksum:], checksum(out, out[HeaderSize:]))
	return dst, nil
}

// Unseal appends to dst the version-1 batch that the sealed batch at the
// start of sealed holds, once it authenticates in context, and returns
// it: for a writer that must restamp a batch it sealed (see Restamp). It
// fails like a Decoder (ErrKey, ErrAuth with ErrCorrupt, ErrCorrupt).
func (k *Keyring) Unseal(dst, sealed, context []byte) ([]byte, error) {
	h, err := PeekHeader(sealed)
	if err != nil {
		return dst, err
	}
	if !h.Sealed || h.StoredLen < sealOverhead || len(sealed) < h.Size() {
		return dst, fmt.Errorf("%w: not a whole sealed batch", ErrCorrupt)
	}
	start := len(dst)
	dst = append(dst, sealed[:HeaderSize]...)
	out, err := k.open(dst, sealed, context, h)
	if err != nil {
		return dst[:start], err
	}
	hdr := out[start : start+HeaderSize]
	hdr[offVersion] = Version
	binary.LittleEndian.PutUint16(hdr[offFlags:], 0)
	binary.LittleEndian.PutUint32(hdr[offStoredLen:], uint32(len(out)-start-HeaderSize))
	binary.LittleEndian.PutUint32(hdr[offReserved:], 0)
	binary.LittleEndian.PutUint64(hdr[offChecksum:], checksum(hdr, out[start+HeaderSize:]))
	return out, nil
}

// open returns the plaintext payload (the version-1 stored bytes) of the
// sealed batch src, whose header h the decoder verified, appended to dst,
// which the caller hands over. It fails with ErrKey (no such key), or with
// ErrAuth and ErrCorrupt (wrong key, wrong context, tampered bytes).
func (k *Keyring) open(dst, src, context []byte, h BatchHeader) ([]byte, error) {
	id := binary.LittleEndian.Uint32(src[offReserved:])
	aead, ok := k.aeads[id]
	if !ok {
		return dst, fmt.Errorf("%w: the batch at offset %d is sealed with key id %d, which the reader does not hold (it holds %v)", ErrKey, h.FirstOffset, id, k.IDs())
	}
	payload := src[HeaderSize:h.Size()]
	adp := adPool.Get().(*[]byte)
	ad := aad((*adp)[:0], context, src[:HeaderSize])
	out, err := aead.Open(dst, payload[:nonceSize], payload[nonceSize:], ad)
	*adp = ad[:0]
	adPool.Put(adp)
	if err != nil {
		return dst, fmt.Errorf("%w: %w: the batch at offset %d (key id %d) does not authenticate here: another key, another place, or changed bytes", ErrCorrupt, ErrAuth, h.FirstOffset, id)
	}
	return out, nil
}
