//go:build invariants

package ring

import "testing"

// TestInvariantsCatchABadRelease: with the invariants tag, a consumer that
// releases more slots than producers published fails at once instead of
// handing the producers slots that are still to be read.
func TestInvariantsCatchABadRelease(t *testing.T) {
	r := NewMPSC[int](4)
	if !r.TryPush(1) {
		t.Fatal("TryPush on an empty ring failed")
	}
	if k := r.Peek(4); k != 1 {
		t.Fatalf("Peek = %d, want 1", k)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("releasing 2 slots with 1 published did not fail")
		}
	}()
	r.Release(2)
}
