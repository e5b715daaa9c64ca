package fuzz

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// master is a segment holding batches of every codec, built once.
var master struct {
	once  sync.Once
	name  string // the segment file's name
	data  []byte
	total int // records in it
	err   error
}

func buildMaster() {
	dir, err := os.MkdirTemp("", "spillway-fuzz-")
	if err != nil {
		master.err = err
		return
	}
	defer func() { master.err = errors.Join(master.err, os.RemoveAll(dir)) }()
	l, _, err := mmap.Open(dir, mmap.Options{SegmentSize: 1 << 20})
	if err != nil {
		master.err = err
		return
	}
	off := 0
	for i, c := range []codec.Compression{codec.None, codec.Zstd, codec.S2, codec.None, codec.S2} {
		enc, err := codec.NewEncoder(codec.WithCompression(c))
		if err != nil {
			master.err = err
			return
		}
		var recs []codec.Record
		for j := range 3 + i {
			recs = append(recs, codec.Record{
				Key:       []byte(fmt.Sprintf("k%d", j%3)),
				Value:     []byte(fmt.Sprintf("rec-%d %s", off+j, strings.Repeat("x", 20+j))),
				Headers:   []codec.Header{{Key: []byte("h"), Value: []byte{byte(j)}}},
				Timestamp: int64(1e18) + int64(off+j)*1000,
			})
		}
		batch, err := enc.AppendBatch(nil, uint64(off), recs)
		err = errors.Join(err, enc.Close())
		if err != nil {
			master.err = err
			return
		}
		if _, err := l.AppendBatch(batch); err != nil {
			master.err = err
			return
		}
		off += len(recs)
	}
	if err := l.Close(); err != nil {
		master.err = err
		return
	}
	master.total = off
	entries, err := os.ReadDir(dir)
	if err != nil {
		master.err = err
		return
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".seg") {
			master.name = e.Name()
			master.data, master.err = os.ReadFile(filepath.Join(dir, e.Name()))
		}
	}
	if master.data == nil && master.err == nil {
		master.err = errors.New("no segment written")
	}
}

// FuzzSegmentRecovery rots a segment file that holds batches of every codec
// (the fuzzer's bytes say where: a length to cut the file to, then
// position/value pairs to XOR in) and opens the log. Whatever the damage,
// opening and reading never panic or hang, and every record read is the
// one written at its offset: damage loses records, it never alters them.
func FuzzSegmentRecovery(f *testing.F) {
	master.once.Do(buildMaster)
	if master.err != nil {
		f.Fatal(master.err)
	}
	f.Add([]byte{})                                               // intact
	f.Add([]byte{0x00, 0x80})                                     // cut in the middle
	f.Add([]byte{0xff, 0xff, 0x05, 0x00, 0x01})                   // the segment header
	f.Add([]byte{0xff, 0xff, 0x50, 0x00, 0x10})                   // the first batch header
	f.Add([]byte{0xff, 0xff, 0xc8, 0x00, 0x04, 0x2c, 0x01, 0x80}) // two batches' bodies
	f.Fuzz(func(t *testing.T, edits []byte) {
		data := append([]byte(nil), master.data...)
		cut := false
		if len(edits) >= 2 {
			if n := int(binary.LittleEndian.Uint16(edits)); n < len(data) {
				data, cut = data[:n], true
			}
			edits = edits[2:]
		}
		for ; len(edits) >= 3 && len(data) > 0; edits = edits[3:] {
			pos := int(binary.LittleEndian.Uint16(edits)) % len(data)
			data[pos] ^= edits[2]
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, master.name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, rec, err := mmap.Open(dir, mmap.Options{SegmentSize: 1 << 20})
		if err != nil {
			return // refusing a directory is allowed; panicking is not
		}
		defer closeOK(t, l)
		r, err := l.NewPeekReader(l.FirstOffset())
		if err != nil {
			t.Fatalf("reader at the first offset %d: %v", l.FirstOffset(), err)
		}
		defer closeOK(t, r)
		read := 0
		for range master.total + 1 {
			first, recs, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading a recovered log: %v", err)
			}
			for i, rc := range recs {
				off := first + uint64(i)
				if want := fmt.Sprintf("rec-%d ", off); !strings.HasPrefix(string(rc.Value), want) {
					t.Fatalf("offset %d holds %q", off, rc.Value)
				}
			}
			read += len(recs)
		}
		if read > master.total {
			t.Fatalf("read %d records, only %d were written", read, master.total)
		}
		if read < master.total && !cut && len(rec.Dropped) == 0 && len(rec.Removed) == 0 && r.Skipped() == 0 {
			// Records go missing only with a report (bytes dropped, a
			// segment removed because its header was cut) or with the
			// file's end: a cut at a batch boundary looks like a log that
			// was never written further, which is what a crash leaves.
			t.Fatalf("read %d of %d records, and recovery reported no loss", read, master.total)
		}
	})
}
