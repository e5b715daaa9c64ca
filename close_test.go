package spillway

import (
	"errors"
	"testing"
)

// closeOK closes c and fails tb if that fails; ErrClosed (a test that
// closed it already) is fine.
func closeOK(tb testing.TB, c interface{ Close() error }) {
	tb.Helper()
	if err := c.Close(); err != nil && !errors.Is(err, ErrClosed) {
		tb.Errorf("Close: %v", err)
	}
}
