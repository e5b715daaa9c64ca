// Package prometheus exports Spillway's Stats to Prometheus: a Collector
// over any number of Queues and Topics, their counters as counters
// (_total), their gauges as gauges, and their latency histograms as
// histograms carrying both classic buckets and native (sparse,
// exponential) buckets, so that a server with native histograms enabled
// gets the fine resolution and any other server the classic buckets.
//
// Every metric is named spillway_<scope>_<what>_<unit>, with scope queue
// (label queue), topic (label topic) or subscription (labels topic and
// subscription); per-shard metrics, when asked for (Collector.Shards), add
// a shard label under spillway_queue_shard_, spillway_topic_shard_ (a
// Topic's shards, its subscriptions' parts added up) and
// spillway_subscription_shard_. The README's Observability section lists
// every metric with its type, unit and what to alert on.
//
// The package is its own module, so that the library does not depend on
// the Prometheus client.
package prometheus
