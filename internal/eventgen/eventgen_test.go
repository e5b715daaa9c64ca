package eventgen

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEvents checks that events are valid JSON, vary, stay within 64 B to
// 4 KiB (plus the closing bytes), and repeat for a seed.
func TestEvents(t *testing.T) {
	g, h := New(1), New(1)
	sizes := map[int]bool{}
	var small, large int
	for i := range 2000 {
		e := g.Event(nil)
		if !json.Valid(e) {
			t.Fatalf("event %d is not JSON: %s", i, e)
		}
		if len(e) < 40 || len(e) > 4096+64 {
			t.Fatalf("event %d has %d bytes", i, len(e))
		}
		if len(e) < 200 {
			small++
		}
		if len(e) > 2000 {
			large++
		}
		sizes[len(e)] = true
		if f := h.Event(nil); !bytes.Equal(e, f) {
			t.Fatal("the same seed produced different events")
		}
	}
	if len(sizes) < 500 || small < 200 || large < 100 {
		t.Fatalf("sizes do not vary enough: %d distinct, %d small, %d large", len(sizes), small, large)
	}
}

func TestEventOfSize(t *testing.T) {
	g := New(3)
	seen := map[string]bool{}
	for _, n := range []int{16, 128, 129, 1000} {
		for range 50 {
			e := g.EventOfSize(nil, n)
			if len(e) != n {
				t.Fatalf("EventOfSize(%d) has %d bytes", n, len(e))
			}
			seen[string(e)] = true
		}
	}
	if len(seen) != 200 {
		t.Fatalf("only %d distinct events", len(seen))
	}
}
