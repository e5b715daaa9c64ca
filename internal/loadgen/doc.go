// Package loadgen drives one sender and one receiver through a message
// pipe (a Spillway Queue, a channel, NATS) at a fixed rate and records the
// send-to-receive latency of every message, corrected for coordinated
// omission: a message's latency counts from when it was meant to be sent
// (start + i/rate), not from when a sender held up by the pipe got to send
// it. Benchmarks (bench/) and the command line's bench share it.
package loadgen
