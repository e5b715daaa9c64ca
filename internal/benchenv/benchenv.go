// Package benchenv tells benchmarks about the machine they ran on: the share
// of CPU time the hypervisor took for other guests while they ran (steal
// time, from Linux's /proc/stat). On a shared VM it can move every figure
// that crosses cores by more than the code does (docs/MEASUREMENTS.md has runs
// that show it). Benchmarks report it as a metric of their own (steal%), so
// that a run's figures can be read against it.
//
// For tests and benchmarks only.
package benchenv

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"testing"
)

// A Meter measures steal time from its Start to a Report.
type Meter struct {
	steal, total uint64
	ok           bool
}

// Start takes the first reading.
func Start() Meter {
	steal, total, ok := read()
	return Meter{steal, total, ok}
}

// StealPercent returns the share of CPU time, summed over every CPU, that
// was stolen since Start, in percent; ok is false where the system does not
// say (not Linux) or no time has passed that it counts (a tick is 10 ms).
func (m Meter) StealPercent() (pct float64, ok bool) {
	steal, total, ok := read()
	if !ok || !m.ok || total <= m.total {
		return 0, false
	}
	return 100 * float64(steal-m.steal) / float64(total-m.total), true
}

// Report adds the steal since Start to b's results as steal%, where the
// system says.
func (m Meter) Report(b *testing.B) {
	if pct, ok := m.StealPercent(); ok {
		b.ReportMetric(pct, "steal%")
	}
}

// Steal starts a Meter and returns the function that stops b's timer and
// reports it (so that reading /proc/stat counts in neither the time nor the
// allocations). Call it as `defer benchenv.Steal(b)()` where nothing timed
// follows.
func Steal(b *testing.B) func() {
	m := Start()
	return func() {
		b.StopTimer()
		m.Report(b)
	}
}

func read() (steal, total uint64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseStat(data)
}

// parseStat reads the all-CPU line of /proc/stat: "cpu  user nice system
// idle iowait irq softirq steal guest guest_nice", in ticks. Guest time is
// already counted in user and nice, so the total is the first eight.
func parseStat(data []byte) (steal, total uint64, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 9 || string(f[0]) != "cpu" {
			continue
		}
		for i := 1; i <= 8; i++ {
			v, err := strconv.ParseUint(string(f[i]), 10, 64)
			if err != nil {
				return 0, 0, false
			}
			total += v
			if i == 8 {
				steal = v
			}
		}
		return steal, total, true
	}
	return 0, 0, false
}
