package loadgen

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Rates are the rates of the tail-latency table: 100 k and 1 M messages
// per second, then unpaced (the most the sender gets through: there the
// latencies count from each actual send, as there is no schedule).
var Rates = []float64{100e3, 1e6, 0}

// Row is one line of the table: a pipe at a rate.
type Row struct {
	Impl   string // what carried the messages
	Result *Result
	Note   string // for the table's last column
}

// RateName names a rate for the table: "100k/s", "1M/s", or "unpaced".
func RateName(rate float64) string {
	switch {
	case rate == 0:
		return "unpaced"
	case rate >= 1e6:
		return fmt.Sprintf("%gM/s", rate/1e6)
	default:
		return fmt.Sprintf("%gk/s", rate/1e3)
	}
}

// Quantiles are the table's percentiles.
var Quantiles = []struct {
	Name string
	Q    float64
}{{"p50", 0.5}, {"p99", 0.99}, {"p99.9", 0.999}, {"p99.99", 0.9999}}

// WriteTable writes rows as a Markdown table: rate, what carried the
// messages, the rate achieved, the percentiles and the maximum, and
// whether the sender fell behind.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	p := printer{w: tw}
	p.printf("| rate\t impl\t achieved msgs/s")
	for _, q := range Quantiles {
		p.printf("\t %s", q.Name)
	}
	p.printf("\t max\t \n|---\t---\t---:")
	for range Quantiles {
		p.printf("\t---:")
	}
	p.printf("\t---:\t---\n")
	for _, r := range rows {
		p.printf("| %s\t %s\t %s", RateName(r.Result.Rate), r.Impl, rate(r.Result.Achieved))
		for _, q := range Quantiles {
			p.printf("\t %s", Dur(r.Result.Latency.Quantile(q.Q)))
		}
		note := r.Note
		if r.Result.Behind {
			note = strings.TrimPrefix(note+"; fell behind: rate not sustained", "; ")
		}
		p.printf("\t %s\t %s\n", Dur(r.Result.Latency.Max()), note)
	}
	return errors.Join(p.err, tw.Flush())
}

// printer writes until the first error, which it keeps.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func rate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2f M", r/1e6)
	default:
		return fmt.Sprintf("%.0f k", r/1e3)
	}
}

// Dur writes d with three significant digits in a unit that suits it.
func Dur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3g µs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3g ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3g s", d.Seconds())
	}
}
