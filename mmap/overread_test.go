package mmap

import (
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spillway-io/spillway/codec"
)

// overreadBatch is a batch a spill wrote (two 128-byte records, zstd)
// whose decoding reads past its end: found as the last batch of a spill
// file whose size stopped two bytes short of a page boundary, where the
// read past the file's end faulted (SIGBUS) and the reader skipped the
// batch as corrupt.
const overreadBatch = "5350574201010000020000000801000022000000000000007b7c0000000000000000000000000000820fedef6f83446d28b52ffd40000800bd00006800008001f10f9a0b008001d91302042afb6088c61d01"

// A compressed batch that ends just short of a page beyond which nothing
// is mapped (the end of a segment file appended with pwrite, as spills
// are) decodes: the decompressors' reads past the end of their input
// (assembly that copies 8 and 16 bytes at a time) must not reach that
// page. The batch ends 0 to 8 bytes before the page boundary, with the
// segment's written end right after it.
func TestDecodeAtFileEnd(t *testing.T) {
	batch, err := hex.DecodeString(overreadBatch)
	if err != nil {
		t.Fatal(err)
	}
	h, err := codec.PeekHeader(batch)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	dec, err := codec.NewDecoder(codec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dec.Close(); err != nil {
			t.Error(err)
		}
	}()
	l := &Log{dec: dec}
	// Two pages, the second inaccessible, as a page past a file's end is.
	region, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Munmap(region); err != nil {
			t.Error(err)
		}
	}()
	if err := unix.Mprotect(region[page:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	for short := range 9 {
		t.Run(fmt.Sprint(short), func(t *testing.T) {
			at := page - short - len(batch)
			clear(region[:page])
			copy(region[at:], batch)
			// The mapping spans the whole reservation, as a segment's does;
			// the file ends where the batch does.
			seg := &segment{name: "tail.seg", data: region[: 2*page : 2*page]}
			seg.end.Store(int64(at + len(batch)))
			var b codec.Batch
			if _, err := l.decodeAt(seg, int64(at), h, &b, nil); err != nil {
				t.Fatal(err)
			}
			if len(b.Records) != 2 || len(b.Records[0].Value) != 128 {
				t.Fatalf("decoded %d records", len(b.Records))
			}
		})
	}
}
