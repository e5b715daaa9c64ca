package bench

import (
	"errors"
	"testing"

	spillway "github.com/spillway-io/spillway"
)

// closeOK closes c and fails tb if that fails; spillway.ErrClosed (a
// benchmark that closed it already) is fine.
func closeOK(tb testing.TB, c interface{ Close() error }) {
	tb.Helper()
	if err := c.Close(); err != nil && !errors.Is(err, spillway.ErrClosed) {
		tb.Errorf("Close: %v", err)
	}
}
