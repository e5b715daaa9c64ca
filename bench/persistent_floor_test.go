package bench

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// persistentFloor is the least a durable queue of checksummed 128-byte
// messages costs here, one producer and one consumer at once (ns/op per
// message): the producer copies each message behind a 16-byte frame
// (length, xxhash64 of the message) into a writable shared mapping of a
// file, reserved and faulted in beforehand and used as a ring, and
// publishes its end with an atomic store; the consumer copies each message
// out into memory of its own (a queue's receiver keeps it: one allocation
// per run of messages it finds) and verifies its checksum. Nothing else: no batch format, offsets, segments, ring of
// messages, locks or waits (both sides spin; the producer only when the
// file is full).
func persistentFloor(b *testing.B, msgs [][]byte) {
	const size = 256 << 20
	path := filepath.Join(b.TempDir(), "floor")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, f)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		b.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := unix.Munmap(m); err != nil {
			b.Error(err)
		}
	}()
	const madvPopulateWrite = 23
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(unsafe.Pointer(&m[0])), size, madvPopulateWrite); e != 0 {
		b.Logf("MADV_POPULATE_WRITE: %v (the stores fault the pages in)", e)
	}
	const frame = 16 + 128
	slots := size / frame
	var written, read atomic.Uint64
	pair(b, func() {
		for i := range b.N {
			for uint64(i)-read.Load() >= uint64(slots) {
				runtime.Gosched() // the file is full
			}
			at := (i % slots) * frame
			msg := msgs[i%msgPool]
			binary.LittleEndian.PutUint64(m[at:], uint64(len(msg)))
			binary.LittleEndian.PutUint64(m[at+8:], xxhash.Sum64(msg))
			copy(m[at+16:at+frame], msg)
			written.Store(uint64(i + 1))
		}
	}, func() {
		for i := 0; i < b.N; {
			end := int(written.Load())
			if end == i {
				runtime.Gosched()
				continue
			}
			arena := make([]byte, 0, (end-i)*128) // one allocation per run, kept
			for ; i < end; i++ {
				at := (i % slots) * frame
				n := int(binary.LittleEndian.Uint64(m[at:]))
				arena = append(arena, m[at+16:at+16+n]...)
				if xxhash.Sum64(arena[len(arena)-n:]) != binary.LittleEndian.Uint64(m[at+8:]) {
					b.Error("checksum mismatch")
					return
				}
			}
			read.Store(uint64(i))
		}
	})
}
