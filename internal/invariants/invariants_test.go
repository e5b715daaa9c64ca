package invariants

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestFailf: a violated invariant panics with a message that says so.
func TestFailf(t *testing.T) {
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "invariant violated: x is 3") {
			t.Fatalf("Failf panicked with %q", msg)
		}
	}()
	Failf("x is %d", 3)
}

// TestEnabled says which build this is, so that a run's log shows whether
// its checks were on.
func TestEnabled(t *testing.T) {
	t.Logf("invariants.Enabled = %v", Enabled)
}
