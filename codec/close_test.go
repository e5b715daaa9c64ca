package codec

import (
	"testing"
)

// closeOK closes c and fails tb if that fails.
func closeOK(tb testing.TB, c interface{ Close() error }) {
	tb.Helper()
	if err := c.Close(); err != nil {
		tb.Errorf("Close: %v", err)
	}
}
