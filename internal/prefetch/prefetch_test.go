package prefetch

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTouch(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want byte
	}{
		{nil, 0},
		{[]byte{}, 0},
		{[]byte{7}, 14},
		{[]byte{1, 2, 3}, 4},
		{append(make([]byte, 127), 9), 9},
	} {
		if got := Touch(c.b); got != c.want {
			t.Errorf("Touch(%d bytes) = %d, want %d", len(c.b), got, c.want)
		}
	}
}
