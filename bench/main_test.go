package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// The peers start goroutines of their own (go-diskqueue's ioLoop) that
// outlive a benchmark by design; only leaks of Spillway's count.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nsqio/go-diskqueue.(*diskQueue).ioLoop"))
}
