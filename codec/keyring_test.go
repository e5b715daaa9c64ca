package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// testKey returns a fixed 32-byte key distinct per seed.
func testKey(seed byte) []byte {
	k := make([]byte, keySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func newTestKeyring(t testing.TB, current uint32, ids ...uint32) *Keyring {
	t.Helper()
	keys := map[uint32][]byte{}
	for _, id := range ids {
		keys[id] = testKey(byte(id))
	}
	k, err := NewKeyring(keys, current)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealedDecoder(t testing.TB, k *Keyring, context []byte, require bool) *Decoder {
	t.Helper()
	d, err := NewDecoder(Limits{}, WithKeyring(k, context, require))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, d) })
	return d
}

var testContext = []byte("dir 0123456789abcdef, shard 3")

// sealGolden returns the golden records, encoded with c at
// goldenFirstOffset and sealed under k in testContext.
func sealGolden(t testing.TB, k *Keyring, c Compression) (plain, sealed []byte) {
	t.Helper()
	enc, _ := newCodecs(t, c, Limits{})
	plain, err := enc.AppendBatch(nil, goldenFirstOffset, goldenRecords())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err = k.Seal(nil, plain, testContext)
	if err != nil {
		t.Fatal(err)
	}
	return plain, sealed
}

// TestSealRoundTrip: a sealed batch of every codec decodes, through Decode
// and AppendRecords, to the records it was made of, and carries none of
// their bytes in the clear; rotation: a reader holding the old and the new
// key reads batches of both.
func TestSealRoundTrip(t *testing.T) {
	old := newTestKeyring(t, 1, 1)
	k := newTestKeyring(t, 2, 1, 2)
	dec := sealedDecoder(t, k, testContext, true)
	for _, c := range compressions {
		for _, w := range []*Keyring{old, k} {
			plain, sealed := sealGolden(t, w, c)
			if len(sealed) != SealedSize(len(plain)) || sealed[offVersion] != sealedVersion || binary.LittleEndian.Uint32(sealed[offReserved:]) != w.Current() {
				t.Fatalf("%v: sealed batch of %d bytes (plain %d), version %d, key id %d", c, len(sealed), len(plain), sealed[offVersion], binary.LittleEndian.Uint32(sealed[offReserved:]))
			}
			for _, marker := range [][]byte{[]byte("purchase"), []byte("4bf92f3577b34da6"), []byte("user-42")} {
				if bytes.Contains(sealed, marker) {
					t.Fatalf("%v: the sealed batch holds %q in the clear", c, marker)
				}
			}
			var b Batch
			n, err := dec.Decode(sealed, &b)
			if err != nil || n != len(sealed) {
				t.Fatalf("%v key %d: Decode = %d, %v", c, w.Current(), n, err)
			}
			if err := recordsEqual(b.Records, goldenRecords()); err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			recs, _, h, n, err := dec.AppendRecords(nil, nil, bytes.Clone(sealed))
			if err != nil || n != len(sealed) || h.FirstOffset != goldenFirstOffset {
				t.Fatalf("%v: AppendRecords = %d, %+v, %v", c, n, h, err)
			}
			if err := recordsEqual(recs, goldenRecords()); err != nil {
				t.Fatalf("%v: AppendRecords: %v", c, err)
			}
		}
	}
}

// TestSealRefusals: what must not decode does not, with the error that
// says why: no keys, a missing key id, a wrong key, another context, a
// batch moved to another offset or relabelled with another key id or
// codec, a plain batch where sealed ones are required.
func TestSealRefusals(t *testing.T) {
	k := newTestKeyring(t, 1, 1, 2)
	plain, sealed := sealGolden(t, k, Zstd)
	resign := func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[offChecksum:], checksum(b, b[HeaderSize:]))
		return b
	}
	wrong, err := NewKeyring(map[uint32][]byte{1: testKey(99)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	plainDec, err := NewDecoder(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, plainDec)
	moved := bytes.Clone(sealed)
	binary.LittleEndian.PutUint64(moved[offFirst:], goldenFirstOffset+1)
	resign(moved)
	relabelled := bytes.Clone(sealed)
	binary.LittleEndian.PutUint32(relabelled[offReserved:], 2)
	resign(relabelled)
	recodec := bytes.Clone(sealed)
	recodec[offCodec] = byte(S2)
	resign(recodec)
	cases := []struct {
		name  string
		dec   *Decoder
		batch []byte
		want  []error
	}{
		{"no keys", plainDec, sealed, []error{ErrKey}},
		{"missing key id", sealedDecoder(t, newTestKeyring(t, 2, 2), testContext, false), sealed, []error{ErrKey}},
		{"wrong key", sealedDecoder(t, wrong, testContext, false), sealed, []error{ErrAuth, ErrCorrupt}},
		{"another context", sealedDecoder(t, k, []byte("dir 0123456789abcdef, shard 4"), false), sealed, []error{ErrAuth, ErrCorrupt}},
		{"moved to another offset", sealedDecoder(t, k, testContext, false), moved, []error{ErrAuth, ErrCorrupt}},
		{"another key id", sealedDecoder(t, k, testContext, false), relabelled, []error{ErrAuth, ErrCorrupt}},
		{"another codec", sealedDecoder(t, k, testContext, false), recodec, []error{ErrAuth, ErrCorrupt}},
		{"plain where sealed is required", sealedDecoder(t, k, testContext, true), plain, []error{ErrNotSealed, ErrCorrupt}},
	}
	for _, c := range cases {
		var b Batch
		_, err := c.dec.Decode(c.batch, &b)
		for _, want := range c.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: Decode: %v, want %v", c.name, err, want)
			}
		}
		if errors.Is(err, ErrKey) && errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: a missing key is not damage: %v", c.name, err)
		}
		if len(b.Records) != 0 {
			t.Errorf("%s: %d records delivered", c.name, len(b.Records))
		}
		if _, _, _, _, err := c.dec.AppendRecords(nil, nil, bytes.Clone(c.batch)); !errors.Is(err, c.want[0]) {
			t.Errorf("%s: AppendRecords: %v, want %v", c.name, err, c.want[0])
		}
	}
	// A plain batch still reads where sealed ones are not required.
	var b Batch
	if _, err := sealedDecoder(t, k, testContext, false).Decode(plain, &b); err != nil {
		t.Fatalf("a plain batch with sealing optional: %v", err)
	}
}

// TestSealTamper changes every byte of a sealed batch, then fixes the
// checksum as someone who knew the format would: no change decodes.
// Without the checksum fixed, each is a checksum error (or a refusal of
// the header); cut at every length, a truncation.
func TestSealTamper(t *testing.T) {
	k := newTestKeyring(t, 1, 1)
	dec := sealedDecoder(t, k, testContext, true)
	_, sealed := sealGolden(t, k, S2)
	var b Batch
	for i := range sealed {
		if i >= offChecksum && i < HeaderSize {
			continue // the checksum itself: recomputed below anyway
		}
		for _, fix := range []bool{false, true} {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x20
			if fix {
				n := min(len(bad), HeaderSize+int(binary.LittleEndian.Uint32(bad[offStoredLen:])))
				binary.LittleEndian.PutUint64(bad[offChecksum:], checksum(bad, bad[HeaderSize:n]))
			}
			if _, err := dec.Decode(bad, &b); err == nil {
				t.Fatalf("byte %d flipped (checksum fixed: %v): decoded", i, fix)
			} else if !isDecodeError(err) && !errors.Is(err, ErrKey) {
				t.Fatalf("byte %d flipped: unexpected error %v", i, err)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := dec.Decode(sealed[:n], &b); err == nil || (!isDecodeError(err) && !errors.Is(err, io.EOF)) {
			t.Fatalf("cut at %d bytes: %v", n, err)
		}
	}
}

// TestSealNonces: nonces never repeat under one Keyring, and the prefix
// is redrawn before the counter wraps.
func TestSealNonces(t *testing.T) {
	k := newTestKeyring(t, 1, 1)
	seen := map[[nonceSize]byte]bool{}
	var n [nonceSize]byte
	for range 10000 {
		if err := k.nonce(n[:]); err != nil {
			t.Fatal(err)
		}
		if seen[n] {
			t.Fatalf("nonce %x repeated", n)
		}
		seen[n] = true
	}
	prefix := k.prefix
	k.count = 1<<32 - 1
	if err := k.nonce(n[:]); err != nil {
		t.Fatal(err)
	}
	if k.prefix == prefix || binary.LittleEndian.Uint32(n[8:]) != 0 {
		t.Fatalf("at the counter's end: prefix %x (was %x), counter %d", k.prefix, prefix, binary.LittleEndian.Uint32(n[8:]))
	}
}

// TestSealKeys: keys of the wrong size and a current id without a key are
// refused; KeyCheck tells keys apart without revealing them.
func TestSealKeys(t *testing.T) {
	if _, err := NewKeyring(map[uint32][]byte{1: make([]byte, 16)}, 1); !errors.Is(err, ErrKey) {
		t.Errorf("a 16-byte key: %v", err)
	}
	if _, err := NewKeyring(map[uint32][]byte{1: testKey(1)}, 2); !errors.Is(err, ErrKey) {
		t.Errorf("current id 2 without a key: %v", err)
	}
	keys := map[uint32][]byte{1: testKey(1), 2: testKey(2)}
	a, err1 := KeyCheck(keys, 1)
	b, err2 := KeyCheck(keys, 2)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) || bytes.Contains(testKey(1), a) {
		t.Fatalf("key checks %x and %x", a, b)
	}
	if _, err := KeyCheck(keys, 3); !errors.Is(err, ErrKey) {
		t.Errorf("KeyCheck of a missing id: %v", err)
	}
}

// TestSealGolden freezes format version 2: the golden records, uncompressed,
// sealed under a fixed key, nonce and context, give the golden bytes.
func TestSealGolden(t *testing.T) {
	k := newTestKeyring(t, 7, 7)
	k.nonceFn = func(n []byte) {
		for i := range n {
			n[i] = byte(0xA0 + i)
		}
	}
	_, sealed := sealGolden(t, k, None)
	path := filepath.Join("testdata", "golden-sealed.batch")
	if *updateGolden {
		if err := os.WriteFile(path, sealed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, golden) {
		t.Fatalf("sealing the golden records gives other bytes than %s: the format changed", path)
	}
	var b Batch
	if _, err := sealedDecoder(t, k, testContext, true).Decode(golden, &b); err != nil {
		t.Fatal(err)
	}
	if err := recordsEqual(b.Records, goldenRecords()); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeSealed feeds a decoder that holds the keys arbitrary bytes
// around sealed batches: it never panics, never allocates past its limits,
// and decodes only batches that authenticate, to records that re-encode.
// With resign the checksum is recomputed first, so that changes reach the
// authentication.
func FuzzDecodeSealed(f *testing.F) {
	k := newTestKeyring(f, 1, 1)
	dec, err := NewDecoder(fuzzLimits, WithKeyring(k, testContext, true))
	if err != nil {
		f.Fatal(err)
	}
	defer closeOK(f, dec)
	for _, c := range compressions {
		_, sealed := sealGolden(f, k, c)
		f.Add(sealed, false)
		f.Add(sealed, true)
	}
	var b Batch
	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		if resign && len(data) >= HeaderSize {
			n := min(len(data), HeaderSize+int(binary.LittleEndian.Uint32(data[offStoredLen:])))
			binary.LittleEndian.PutUint64(data[offChecksum:], checksum(data, data[HeaderSize:n]))
		}
		n, err := dec.Decode(data, &b)
		if cap(b.payload) > fuzzLimits.MaxRawBytes+zstdSlack || cap(b.sealed) > fuzzLimits.MaxBatchBytes {
			t.Fatalf("allocated %d payload and %d sealed bytes beyond the limits", cap(b.payload), cap(b.sealed))
		}
		if err != nil {
			if !isDecodeError(err) && !errors.Is(err, io.EOF) && !errors.Is(err, ErrKey) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if data[offVersion] != sealedVersion || n > len(data) || int(b.Header.Count) != len(b.Records) {
			t.Fatalf("decoded a batch of version %d, n=%d of %d, header %+v, %d records", data[offVersion], n, len(data), b.Header, len(b.Records))
		}
	})
}

// TestUnseal: Unseal gives back the batch Seal was given, and refuses one
// that does not authenticate.
func TestUnseal(t *testing.T) {
	k := newTestKeyring(t, 1, 1)
	plain, sealed := sealGolden(t, k, Zstd)
	got, err := k.Unseal(nil, sealed, testContext)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Unseal: %v (equal: %v)", err, bytes.Equal(got, plain))
	}
	if _, err := k.Unseal(nil, sealed, []byte("elsewhere")); !errors.Is(err, ErrAuth) {
		t.Fatalf("Unseal in another context: %v", err)
	}
	if _, err := k.Unseal(nil, plain, testContext); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Unseal of a plain batch: %v", err)
	}
}
