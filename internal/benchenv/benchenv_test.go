package benchenv

import (
	"runtime"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-io/spillway/internal/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		in           string
		steal, total uint64
		ok           bool
	}{
		{"cpu  100 1 20 300 4 0 5 70 9 0\ncpu0 50 0 10 150 2 0 2 35 0 0\n", 70, 500, true},
		{"intr 1 2 3\ncpu  1 2 3 4 5 6 7 8\n", 8, 36, true},
		{"cpu0 1 2 3 4 5 6 7 8\n", 0, 0, false}, // no all-CPU line
		{"cpu  1 2 3\n", 0, 0, false},           // too short (an old kernel)
		{"cpu  1 2 3 x 5 6 7 8\n", 0, 0, false},
		{"", 0, 0, false},
	} {
		steal, total, ok := parseStat([]byte(c.in))
		if steal != c.steal || total != c.total || ok != c.ok {
			t.Errorf("parseStat(%q) = %d, %d, %v; want %d, %d, %v", c.in, steal, total, ok, c.steal, c.total, c.ok)
		}
	}
}

func TestMeterOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat is Linux's")
	}
	if _, _, ok := read(); !ok {
		t.Fatal("cannot read /proc/stat on Linux")
	}
	m := Start()
	var pct float64
	testwait.For(t, "the kernel to count a tick", func() bool {
		var ok bool
		pct, ok = m.StealPercent()
		return ok
	})
	if pct < 0 || pct > 100 {
		t.Fatalf("steal %.1f%%", pct)
	}
}
