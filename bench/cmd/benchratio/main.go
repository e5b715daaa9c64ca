// Command benchratio reads `go test -bench` output (with
// golang.org/x/perf/benchfmt, the reader benchstat uses) and prints, for
// every benchmark run with an impl=<name> sub-benchmark key, the median
// ns/op of each implementation and the speed-up of the first one named on
// the command line over each of the others.
//
//	go test -run '^$' -bench . -count 6 ./ring | (cd bench && go run ./cmd/benchratio ring chan)
//
// It lives in the bench module, whose go.mod may depend on what the
// library's must not.
//
// With -key=<k> as the first argument it compares the values of the
// sub-benchmark key k instead of impl:
//
//	... | go run ./internal/cmd/benchratio -key=subs fast=2+slow fast=2
//
// Where the benchmarks reported steal% (the CPU time the hypervisor took,
// see internal/benchenv), a last column gives its median over the row's
// runs of every implementation compared.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

type sample struct {
	nsPerOp []float64
	allocs  []float64
	steal   []float64
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: benchratio <impl> <baseline-impl>... < bench-output")
		os.Exit(2)
	}
	key := "impl"
	impls := os.Args[1:]
	if k, ok := strings.CutPrefix(impls[0], "-key="); ok {
		key, impls = k, impls[1:]
	}
	if len(impls) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchratio [-key=k] <impl> <baseline-impl>... < bench-output")
		os.Exit(2)
	}
	if err := table(os.Stdin, os.Stdout, key, impls); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

// table reads benchmark output from r and writes the comparison of impls
// (values of the sub-benchmark key) to w as a Markdown table. Lines that
// are not benchmark results are passed over, as benchstat does.
func table(r io.Reader, w io.Writer, key string, impls []string) error {
	results := map[string]map[string]*sample{} // benchmark (impl removed) -> impl -> samples
	var order []string
	anySteal := false
	br := benchfmt.NewReader(r, "input")
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // a syntax error or unit metadata
		}
		name, impl, ok := splitKey(res.Name, key)
		if !ok {
			continue
		}
		s := results[name]
		if s == nil {
			s = map[string]*sample{}
			results[name] = s
			order = append(order, name)
		}
		if s[impl] == nil {
			s[impl] = &sample{}
		}
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" { // benchfmt tidies ns/op into sec/op
				unit, val = v.OrigUnit, v.OrigValue
			}
			switch unit {
			case "ns/op":
				s[impl].nsPerOp = append(s[impl].nsPerOp, val)
			case "allocs/op":
				s[impl].allocs = append(s[impl].allocs, val)
			case "steal%":
				s[impl].steal = append(s[impl].steal, val)
				anySteal = true
			}
		}
	}
	if err := br.Err(); err != nil {
		return err
	}
	head := "| benchmark |"
	rule := "|---|"
	for _, impl := range impls {
		head += " " + impl + " ns/op |"
		rule += "---:|"
	}
	for _, impl := range impls[1:] {
		head += " " + impls[0] + " vs " + impl + " |"
		rule += "---:|"
	}
	head += " " + impls[0] + " allocs/op |"
	rule += "---:|"
	if anySteal {
		head += " steal% |"
		rule += "---:|"
	}
	lines := []string{head, rule}
	for _, name := range order {
		s := results[name]
		base := s[impls[0]]
		if base == nil || len(base.nsPerOp) == 0 {
			continue
		}
		row := "| " + name + " |"
		for _, impl := range impls {
			if x := s[impl]; x != nil && len(x.nsPerOp) > 0 {
				row += fmt.Sprintf(" %.3g |", median(x.nsPerOp))
			} else {
				row += " – |"
			}
		}
		for _, impl := range impls[1:] {
			if x := s[impl]; x != nil && len(x.nsPerOp) > 0 {
				row += fmt.Sprintf(" **%.1f×** |", median(x.nsPerOp)/median(base.nsPerOp))
			} else {
				row += " – |"
			}
		}
		row += fmt.Sprintf(" %g |", median(base.allocs))
		if anySteal {
			var steal []float64
			for _, impl := range impls {
				if x := s[impl]; x != nil {
					steal = append(steal, x.steal...)
				}
			}
			if len(steal) > 0 {
				row += fmt.Sprintf(" %.1f |", median(steal))
			} else {
				row += " – |"
			}
		}
		lines = append(lines, row)
	}
	_, err := fmt.Fprintln(w, strings.Join(lines, "\n"))
	return err
}

// splitKey removes the key=<x> element from a benchmark name such as
// SPSCBatch/batch=32/impl=ring-2 (and the GOMAXPROCS suffix) and returns
// the rest and x.
func splitKey(n benchfmt.Name, key string) (name, value string, ok bool) {
	base, parts := n.Parts()
	kept := []string{string(base)}
	for _, p := range parts {
		part := string(p)
		if strings.HasPrefix(part, "-") {
			continue // GOMAXPROCS
		}
		if v, found := strings.CutPrefix(part, "/"+key+"="); found && !ok {
			value, ok = v, true
			continue
		}
		kept = append(kept, part)
	}
	if !ok {
		return "", "", false
	}
	return strings.Join(kept, ""), value, true
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
