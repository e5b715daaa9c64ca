// Package bench compares Spillway with channels and with peer libraries on
// the same workloads. It is its own module, so that the peers
// (grandecola/bigqueue, nsqio/go-diskqueue, Workiva/go-datastructures,
// NATS JetStream and core NATS, embedded) never enter Spillway's go.mod.
// Run it with `make bench` from the repository root, or:
//
//	cd bench && go test -run '^$' -bench . -cpu 2 -count 6 .
//
// BenchmarkTailLatency sends at fixed rates and reports percentiles
// (coordinated omission corrected); cmd/latency prints the same as a table,
// with Spillway's spill and Persistent paths and a floor, and plots it.
package bench
