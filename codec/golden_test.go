package codec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite codec/testdata/golden-*.batch (only with a format version bump)")

// goldenRecords are the records frozen in testdata/golden-*.batch: every
// field present and absent, extreme values, headers with empty parts.
func goldenRecords() []Record {
	return []Record{
		{Value: []byte("minimal"), Timestamp: 1_795_000_000_000_000_000},
		{
			Key: []byte("user-42"), Value: []byte(`{"type":"purchase","amount":12.5,"currency":"EUR"}`),
			Headers:   []Header{{Key: []byte("trace-id"), Value: []byte("4bf92f3577b34da6")}, {Key: []byte("empty"), Value: nil}, {}},
			Timestamp: 1_795_000_000_123_456_789, ProducerID: 7, ProducerSeq: 1 << 40, Attempts: 3,
			DeliverAt: 1_795_000_060_000_000_000, ExpiresAt: 1_795_086_400_000_000_000,
		},
		{Key: []byte("k"), Timestamp: 1_794_999_999_000_000_000}, // earlier than the base: negative delta
		{Value: bytes.Repeat([]byte("spill "), 40), Timestamp: -1, ExpiresAt: 1<<63 - 1},
		{ProducerSeq: 1, Attempts: 1<<32 - 1, DeliverAt: -1 << 63, Timestamp: 1<<63 - 1},
	}
}

const goldenFirstOffset = 1<<32 + 5

// TestGolden freezes the format. For None, encoding the golden records must
// give the golden bytes exactly. For zstd and S2, whose compressed bytes may
// change with the compressor's version, the golden files must decode to the
// golden records, and their header and decompressed payload must equal what
// the encoder produces now.
func TestGolden(t *testing.T) {
	for _, c := range compressions {
		t.Run(c.String(), func(t *testing.T) {
			enc, dec := newCodecs(t, c, Limits{})
			now, err := enc.AppendBatch(nil, goldenFirstOffset, goldenRecords())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden-"+c.String()+".batch")
			if *updateGolden {
				if err := os.WriteFile(path, now, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var g, n Batch
			if _, err := dec.Decode(golden, &g); err != nil {
				t.Fatalf("golden file does not decode: %v", err)
			}
			if err := recordsEqual(g.Records, goldenRecords()); err != nil {
				t.Fatalf("golden file decodes to other records: %v", err)
			}
			if g.Header.Compression != c || g.Header.FirstOffset != goldenFirstOffset {
				t.Fatalf("golden header %+v", g.Header)
			}
			if c == None {
				if !bytes.Equal(now, golden) {
					t.Fatalf("encoding changed:\n now    %x\n golden %x", now, golden)
				}
				return
			}
			if _, err := dec.Decode(now, &n); err != nil {
				t.Fatal(err)
			}
			if n.Header.RawLen != g.Header.RawLen || n.Header.Count != g.Header.Count || n.Header.BaseTime != g.Header.BaseTime {
				t.Fatalf("header changed: now %+v, golden %+v", n.Header, g.Header)
			}
			if !bytes.Equal(rawPayload(t, now), rawPayload(t, golden)) {
				t.Fatal("the uncompressed record bytes changed")
			}
		})
	}
}

// rawPayload returns the decompressed record bytes of a batch.
func rawPayload(t *testing.T, batch []byte) []byte {
	t.Helper()
	_, dec := newCodecs(t, None, Limits{})
	var b Batch
	if _, err := dec.Decode(batch, &b); err != nil {
		t.Fatal(err)
	}
	enc, _ := newCodecs(t, None, Limits{})
	raw, err := enc.AppendBatch(nil, b.Header.FirstOffset, b.Records)
	if err != nil {
		t.Fatal(err)
	}
	return raw[HeaderSize:]
}
