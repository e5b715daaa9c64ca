package loadgen

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// CPUModel is the CPU's model name where the system says it (Linux), or
// "".
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Machine describes what a benchmark runs on, in one line.
func Machine() string {
	cpu := CPUModel()
	if cpu == "" {
		cpu = "unknown CPU"
	}
	return fmt.Sprintf("%s/%s, %s, %d CPUs, GOMAXPROCS=%d, %s", runtime.GOOS, runtime.GOARCH, cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
}
