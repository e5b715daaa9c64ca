package codec_test

import (
	"fmt"
	"log"

	"github.com/spillway-io/spillway/codec"
)

// Encode records into one checksummed, compressed batch and decode it back.
// Encoders and decoders are long-lived and safe for concurrent use; the
// append-style calls reuse the caller's buffers.
func Example() {
	enc, err := codec.NewEncoder(codec.WithCompression(codec.Zstd))
	if err != nil {
		log.Fatal(err)
	}
	dec, err := codec.NewDecoder(codec.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}

	recs := []codec.Record{
		{Key: []byte("user-1"), Value: []byte(`{"event":"signup"}`)},
		{Key: []byte("user-1"), Value: []byte(`{"event":"login"}`), Headers: []codec.Header{{Key: []byte("trace"), Value: []byte("ab12")}}},
	}
	buf, err := enc.AppendBatch(nil, 100, recs) // the batch's first offset is 100
	if err != nil {
		log.Fatal(err)
	}
	var b codec.Batch
	if _, err := dec.Decode(buf, &b); err != nil {
		log.Fatal(err)
	}
	for i, r := range b.Records {
		fmt.Println(b.Header.FirstOffset+uint64(i), string(r.Key), string(r.Value), len(r.Headers))
	}
	buf[len(buf)-1] ^= 1 // one flipped bit
	_, err = dec.Decode(buf, &b)
	fmt.Println(err != nil)
	if err := dec.Close(); err != nil {
		log.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 100 user-1 {"event":"signup"} 0
	// 101 user-1 {"event":"login"} 1
	// true
}
