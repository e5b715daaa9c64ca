package codec

import "errors"

// The errors of package codec. Decoding wraps them with details; match them
// with errors.Is.
var (
	// ErrCorrupt: the bytes are not a well-formed batch (bad magic, unknown
	// codec or flags, lengths or records that do not add up).
	ErrCorrupt = errors.New("spillway/codec: corrupt batch")
	// ErrChecksum: the batch is well-formed but its checksum does not match:
	// the bytes changed after they were written.
	ErrChecksum = errors.New("spillway/codec: checksum mismatch")
	// ErrTruncated: the input ends inside a batch, as after a torn write.
	ErrTruncated = errors.New("spillway/codec: truncated batch")
	// ErrVersion: the batch was written by a format version this package
	// does not read.
	ErrVersion = errors.New("spillway/codec: unsupported format version")
	// ErrTooLarge: a batch, its records or its decompressed size exceed the
	// configured Limits (when decoding), or would (when encoding).
	ErrTooLarge = errors.New("spillway/codec: batch exceeds limits")
	// ErrClosed: the Encoder or Decoder was closed.
	ErrClosed = errors.New("spillway/codec: closed")
	// ErrKey: a sealed batch names a key the reader does not hold (or the
	// reader holds none), or a key given is not a 32-byte AES-256 key. The
	// batch is not damaged: reading it needs its key.
	ErrKey = errors.New("spillway/codec: key missing or unusable")
	// ErrAuth: a sealed batch does not authenticate: it was sealed under
	// another key or for another place (context, offset), or its bytes
	// changed. It comes with ErrCorrupt: such a batch is treated as a
	// damaged one, never delivered.
	ErrAuth = errors.New("spillway/codec: authentication failed")
	// ErrNotSealed: a reader that requires sealed batches met a plain one.
	ErrNotSealed = errors.New("spillway/codec: batch not sealed")
)
