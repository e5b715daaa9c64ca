package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/loadgen"
)

// latencyPipes are what bench -latency sends through: Spillway's three
// paths and a buffered channel. (bench/cmd/latency adds core NATS.)
var latencyPipes = []struct {
	name string
	opts func(dir string) *spillway.Options // nil: the channel
}{
	{"spillway", func(string) *spillway.Options { return &spillway.Options{} }},
	{"spillway spill", func(dir string) *spillway.Options { return &spillway.Options{Dir: dir, RingSize: 16} }},
	{"spillway persistent", func(dir string) *spillway.Options {
		return &spillway.Options{Dir: dir, Durability: spillway.Persistent, Sync: spillway.SyncNever}
	}},
	{"chan", nil},
}

// latencyRow is one line of bench -latency's JSON.
type latencyRow struct {
	Rate       float64 `json:"rate"` // messages per second asked for; 0: unpaced
	Impl       string  `json:"impl"`
	Achieved   float64 `json:"achieved_msgs_per_sec"`
	Recorded   uint64  `json:"recorded"`
	P50Ns      int64   `json:"p50_ns"`
	P99Ns      int64   `json:"p99_ns"`
	P999Ns     int64   `json:"p999_ns"`
	P9999Ns    int64   `json:"p9999_ns"`
	MaxNs      int64   `json:"max_ns"`
	Behind     bool    `json:"behind,omitempty"` // the rate was not sustained
	ViaDiskPct float64 `json:"via_disk_pct,omitempty"`
}

// runLatency is bench -latency: one sender at each of loadgen.Rates, one
// receiver, every message's latency from its intended send time, each
// pipe for c.duration.
func runLatency(c *benchConfig, stdout, stderr io.Writer) error {
	if c.duration <= 0 {
		return usageError{"-latency runs for -duration (not -count)"}
	}
	var rows []loadgen.Row
	var out []latencyRow
	for _, rate := range loadgen.Rates {
		for i, lp := range latencyPipes {
			var p loadgen.Pipe
			var q *spillway.Queue
			dir := filepath.Join(c.dir, fmt.Sprintf("latency-%d-%d", int(rate), i))
			if lp.opts == nil {
				p = loadgen.NewChanPipe(4096)
			} else {
				opts := lp.opts(dir)
				var err error
				if q, err = spillway.OpenQueue(*opts); err != nil {
					return err
				}
				p = loadgen.QueuePipe{Q: q}
			}
			if !c.quiet {
				_, _ = fmt.Fprintf(stderr, "latency %-7s %s\n", loadgen.RateName(rate), lp.name) // progress only
			}
			runtime.GC()
			r, err := loadgen.Run(p, loadgen.Config{Rate: rate, Duration: c.duration, Size: max(c.size, 8)})
			note, viaDisk := "", 0.0
			if q != nil {
				if st := q.Stats(); st.Spilled > 0 {
					viaDisk = 100 * float64(st.Spilled) / float64(max(st.Sent, 1))
					note = fmt.Sprintf("%.1f%% through the disk", viaDisk)
				}
			}
			if cerr := p.Close(); err == nil {
				err = cerr
			}
			if rerr := os.RemoveAll(dir); err == nil { // ours: made under -dir for this run
				err = rerr
			}
			if err != nil {
				return fmt.Errorf("%s at %s: %w", lp.name, loadgen.RateName(rate), err)
			}
			rows = append(rows, loadgen.Row{Impl: lp.name, Result: r, Note: note})
			out = append(out, latencyRow{
				Rate: rate, Impl: lp.name, Achieved: r.Achieved, Recorded: r.Latency.Count(),
				P50Ns: int64(r.Latency.Quantile(0.5)), P99Ns: int64(r.Latency.Quantile(0.99)),
				P999Ns: int64(r.Latency.Quantile(0.999)), P9999Ns: int64(r.Latency.Quantile(0.9999)),
				MaxNs: int64(r.Latency.Max()), Behind: r.Behind, ViaDiskPct: viaDisk,
			})
		}
	}
	m := describeMachine()
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Machine  machine       `json:"machine"`
			Duration time.Duration `json:"duration_ns"`
			Size     int           `json:"size"`
			Results  []latencyRow  `json:"results"`
		}{m, c.duration, c.size, out})
	}
	if _, err := fmt.Fprintf(stdout, "%s; %d-byte messages, %v per run; latency from each message's intended send time\n\n", m, c.size, c.duration); err != nil {
		return err
	}
	return loadgen.WriteTable(stdout, rows)
}
