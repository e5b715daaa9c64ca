//go:build amd64 && gc && !race && !spillway_atomic

package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// orderSlot is what a ring's slot looks like to publishSlot: the word that
// publishes it first, the data after it.
type orderSlot struct {
	seq  atomic.Uint64
	a, b uint64
}

// publishSlot fills a slot with plain stores and then publishes it with
// Store, as the rings do.
//
//go:noinline
func publishSlot(s *orderSlot, v uint64) {
	s.a = v
	s.b = ^v
	Store(&s.seq, v)
}

// storeDest matches the memory operand a store writes to in `go tool
// objdump`'s Go syntax: an optional offset and a base register.
var storeDest = regexp.MustCompile(`^MOV[QL]\s+.*,\s*(0x[0-9a-f]+|[0-9]+)?\(([A-Z0-9]+)\)$`)

// TestCompiledStoreOrder is the compiler's half of the bet the package
// makes (see the package doc): in the code the gc compiler emitted for
// publishSlot, Store's plain MOV to the publishing word comes after the
// stores of the data it publishes. The CPU's half is TestMessagePassing.
// A Go upgrade must pass it (README, Contributing).
func TestCompiledStoreOrder(t *testing.T) {
	publishSlot(&orderSlot{}, 1) // keep it linked
	// go test runs a binary without a symbol table: build one with the go
	// command on PATH, which must be the toolchain that built this test.
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := exec.Command(gotool, "env", "GOVERSION").Output(); err != nil || strings.TrimSpace(string(v)) != runtime.Version() {
		t.Fatalf("go on PATH is %q (%v), this test was built by %s", strings.TrimSpace(string(v)), err, runtime.Version())
	}
	bin := filepath.Join(t.TempDir(), "release.test")
	build := exec.Command(gotool, "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	out, err := exec.Command(gotool, "tool", "objdump", "-s", `release\.publishSlot$`, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump: %v\n%s", err, out)
	}
	var offsets []string // the offsets publishSlot stores to through its argument, in order
	for line := range strings.SplitSeq(string(out), "\n") {
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == '\t' })
		if len(fields) < 4 {
			continue
		}
		m := storeDest.FindStringSubmatch(strings.TrimSpace(fields[len(fields)-1]))
		if m == nil || m[2] == "SP" {
			continue // not a store, or one to the stack frame
		}
		off := m[1]
		if off == "" || off == "0" {
			off = "0x0"
		}
		offsets = append(offsets, off)
	}
	t.Logf("publishSlot stores to offsets %v (%s)", offsets, runtime.Version())
	if len(offsets) != 3 {
		t.Fatalf("found %d stores in publishSlot, want 3:\n%s", len(offsets), out)
	}
	if offsets[2] != "0x0" {
		t.Fatalf("the publishing store is not the last one: stores to offsets %v\n%s", offsets, out)
	}
}
