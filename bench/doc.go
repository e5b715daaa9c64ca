// Package bench compares Spillway with channels and with peer libraries on
// the same workloads. It is its own module, so that the peers
// (grandecola/bigqueue, nsqio/go-diskqueue, Workiva/go-datastructures)
// never enter Spillway's go.mod. Run it with `make bench` from the
// repository root, or:
//
//	cd bench && go test -run '^$' -bench . -cpu 2 -count 6 .
package bench
