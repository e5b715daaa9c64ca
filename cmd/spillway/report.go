package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/spillway-io/spillway/internal/loadgen"
)

// machine is what bench ran on.
type machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPU        string `json:"cpu,omitempty"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
}

func describeMachine() machine {
	return machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPU: loadgen.CPUModel(), NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()}
}

func (m machine) String() string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	return fmt.Sprintf("%s/%s, %s, %d CPUs, GOMAXPROCS=%d, %s", m.GOOS, m.GOARCH, cpu, m.NumCPU, m.GOMAXPROCS, m.Go)
}

// report is bench's JSON output.
type report struct {
	Machine  machine       `json:"machine"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Count    int           `json:"count,omitempty"`
	Size     int           `json:"size"`
	Batch    int           `json:"batch"`
	Results  []result      `json:"results"`
}

func writeJSON(w io.Writer, c *benchConfig, m machine, rs []result) error {
	r := report{Machine: m, Size: c.size, Batch: c.batch, Results: rs}
	if c.count > 0 {
		r.Count = c.count
	} else {
		r.Duration = c.duration
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeTable(w io.Writer, c *benchConfig, m machine, rs []result) error {
	run := fmt.Sprintf("%v per side", c.duration)
	if c.count > 0 {
		run = fmt.Sprintf("%d messages per side", c.count)
	}
	if _, err := fmt.Fprintf(w, "%s\n%d-byte messages, %d per call, %s\n\n", m, c.size, c.batch, run); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := printer{w: tw}
	p.printf("workload\timpl\tmessages\tmsgs/s\tns/msg\tMB/s\tallocs/msg\tp50\tp99\tspilled\tvs chan\t\n")
	for _, r := range rs {
		vs, spilled := "", ""
		if r.Impl == "spillway" {
			vs = fmt.Sprintf("%.2f×", r.VsChan)
			spilled = fmt.Sprint(r.Spilled)
		}
		p.printf("%s\t%s\t%d\t%s\t%.1f\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t\n",
			r.Workload, r.Impl, r.Messages, si(r.MsgsPerSec), r.NsPerMsg, r.MBPerSec, r.AllocsPerMsg,
			latency(r, r.P50Ns), latency(r, r.P99Ns), spilled, vs)
	}
	if err := errors.Join(p.err, tw.Flush()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\np50, p99: send to receive, 1 in %d messages timed, at full load (a backlog's wait in the spill workload).\nvs chan: Spillway's messages per second over the channel's, on the same messages. The workloads:\n", timedEvery)
	if err != nil {
		return err
	}
	for _, wl := range workloads {
		for _, r := range rs {
			if r.Workload == wl.name {
				if _, err := fmt.Fprintf(w, "  %-16s %s\n", wl.name, wl.what); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// latency writes ns as a duration of three significant digits, or "-" if r
// timed nothing.
func latency(r result, ns float64) string {
	if r.Timed == 0 {
		return "-"
	}
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond).String()
	}
	return d.String()
}

// si writes x with a k, M or G suffix.
func si(x float64) string {
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

// printer writes formatted text and keeps the first error, for output
// written a line at a time and checked once.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
