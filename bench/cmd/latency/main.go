// Command latency is the tail-latency benchmark: one sender at fixed rates
// (100 k and 1 M messages per second, then unpaced), one receiver, the
// latency of every message from its intended send time (coordinated
// omission corrected), through Spillway (in memory, through the spill, and
// Persistent with SyncNever), a buffered channel and core NATS in this
// process, all in one run, with the floor: a bare ring whose receiver
// polls without rest. It prints a Markdown table and, with -plot,
// draws the percentiles.
//
//	cd bench && go run ./cmd/latency -plot ../docs/latency.png
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/bench/internal/pipes"
	"github.com/spillway-io/spillway/internal/loadgen"
)

// impl opens a fresh pipe; note describes what the run did (for the
// table), called after it.
type impl struct {
	name string
	open func(dir string) (loadgen.Pipe, func() string, error)
}

func queue(opts spillway.Options) func(dir string) (loadgen.Pipe, func() string, error) {
	return func(dir string) (loadgen.Pipe, func() string, error) {
		if opts.Dir != "" {
			opts.Dir = dir
		}
		q, err := spillway.OpenQueue(opts)
		if err != nil {
			return nil, nil, err
		}
		return loadgen.QueuePipe{Q: q}, func() string {
			st := q.Stats()
			if st.Spilled == 0 {
				return ""
			}
			return fmt.Sprintf("%.1f%% through the disk", 100*float64(st.Spilled)/float64(max(st.Sent, 1)))
		}, nil
	}
}

var impls = []impl{
	{"spillway", queue(spillway.Options{})},
	{"spillway spill", queue(spillway.Options{Dir: "-", RingSize: 16})},
	{"spillway persistent", queue(spillway.Options{Dir: "-", Durability: spillway.Persistent, Sync: spillway.SyncNever})},
	{"chan", func(string) (loadgen.Pipe, func() string, error) {
		return loadgen.NewChanPipe(4096), func() string { return "" }, nil
	}},
	{"nats", func(string) (loadgen.Pipe, func() string, error) {
		p, err := pipes.Start()
		return p, func() string { return "" }, err
	}},
	{"floor", func(string) (loadgen.Pipe, func() string, error) {
		return pipes.NewFloorPipe(4096), func() string { return "a ring polled without rest: no peer" }, nil
	}},
}

func main() {
	duration := flag.Duration("duration", 2*time.Second, "how long each run sends")
	size := flag.Int("size", 128, "message value size in bytes")
	plotPath := flag.String("plot", "", "also draw the percentiles to this PNG file")
	yield := flag.Bool("yield", false, "the sender yields its P after every send (default: it spins until the next message is due)")
	flag.Parse()
	if err := run(*duration, *size, *plotPath, *yield); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, size int, plotPath string, yield bool) error {
	pacing := "the sender spins until each message is due"
	if yield {
		pacing = "the sender yields after every send"
	}
	fmt.Printf("%s; %d-byte messages, %v per run; %s\n\n", loadgen.Machine(), size, duration, pacing)
	var rows []loadgen.Row
	for _, rate := range loadgen.Rates {
		for _, im := range impls {
			dir, err := os.MkdirTemp("", "spillway-latency-")
			if err != nil {
				return err
			}
			p, note, err := im.open(dir)
			if err != nil {
				return fmt.Errorf("%s: %w", im.name, err)
			}
			runtime.GC()
			r, err := loadgen.Run(p, loadgen.Config{Rate: rate, Duration: duration, Size: size, YieldAfterSend: yield})
			n := ""
			if err == nil {
				n = note()
			}
			if cerr := p.Close(); err == nil {
				err = cerr
			}
			if rerr := os.RemoveAll(dir); err == nil {
				err = rerr
			}
			if err != nil {
				return fmt.Errorf("%s at %s: %w", im.name, loadgen.RateName(rate), err)
			}
			rows = append(rows, loadgen.Row{Impl: im.name, Result: r, Note: n})
			fmt.Fprintf(os.Stderr, "%-8s %-20s p99 %s\n", loadgen.RateName(rate), im.name, loadgen.Dur(r.Latency.Quantile(0.99)))
		}
	}
	if err := loadgen.WriteTable(os.Stdout, rows); err != nil {
		return err
	}
	if plotPath != "" {
		return writePlot(plotPath, rows)
	}
	return nil
}
