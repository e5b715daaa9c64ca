// Command benchratio reads `go test -bench` output and prints, for every
// benchmark run with an impl=<name> sub-benchmark key, the median ns/op of
// each implementation and the speed-up of the first one named on the
// command line over each of the others.
//
//	go test -run '^$' -bench . -count 6 ./ring | go run ./internal/cmd/benchratio ring chan
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
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
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
	table(os.Stdin, os.Stdout, key, impls)
}

// table reads benchmark output from r and writes the comparison of impls
// (values of the sub-benchmark key) to w as a Markdown table.
func table(r io.Reader, w io.Writer, key string, impls []string) {
	results := map[string]map[string]*sample{} // benchmark (impl removed) -> impl -> samples
	var order []string
	sc := bufio.NewScanner(r)
	anySteal := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name, impl, ok := splitKey(fields[0], key)
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
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				s[impl].nsPerOp = append(s[impl].nsPerOp, v)
			case "allocs/op":
				s[impl].allocs = append(s[impl].allocs, v)
			case "steal%":
				s[impl].steal = append(s[impl].steal, v)
				anySteal = true
			}
		}
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
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
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
		fmt.Fprintln(w, row)
	}
}

// splitKey removes the key=<x> element from a benchmark name such as
// BenchmarkSPSCBatch/batch=32/impl=ring-2 and returns x.
func splitKey(full, key string) (name, impl string, ok bool) {
	if i := strings.LastIndexByte(full, '-'); i > 0 {
		if _, err := strconv.Atoi(full[i+1:]); err == nil {
			full = full[:i]
		}
	}
	parts := strings.Split(strings.TrimPrefix(full, "Benchmark"), "/")
	for i, p := range parts {
		if v, found := strings.CutPrefix(p, key+"="); found {
			return strings.Join(slices.Delete(parts, i, i+1), "/"), v, true
		}
	}
	return "", "", false
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
