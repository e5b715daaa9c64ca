// Package pipes holds the tail-latency benchmark's pipes that the
// library's loadgen lacks: core NATS (a server in this process on a
// loopback port, a publishing connection and a subscribing one) and the
// floor (a bare ring whose receiver polls without rest).
package pipes
