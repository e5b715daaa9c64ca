package prometheus

import (
	"maps"
	"slices"
	"strconv"
	"sync"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-io/spillway"
)

// Source is a Queue or a Topic, under the name its metrics are labelled
// with.
type Source struct {
	name  string
	queue *spillway.Queue
	topic *spillway.Topic
}

// Queue names q for its metrics (label queue).
func Queue(name string, q *spillway.Queue) Source { return Source{name: name, queue: q} }

// Topic names t for its metrics (label topic); each of its subscriptions
// is labelled with the topic's name and its own.
func Topic(name string, t *spillway.Topic) Source { return Source{name: name, topic: t} }

// Collector is a prometheus.Collector over Queues and Topics. Each scrape
// reads every source's Stats (StatsWith: a moment under each shard's
// receiver lock, and a snapshot of each latency histogram).
//
// It is safe for concurrent use: sources may be added and removed while
// Prometheus scrapes.
type Collector struct {
	mu     sync.RWMutex
	queues map[string]*spillway.Queue
	topics map[string]*spillway.Topic
	shards bool
	descs  descs
	bounds []float64 // classic histogram bucket bounds, in seconds
}

// NewCollector returns a Collector over sources (more may be added).
func NewCollector(sources ...Source) *Collector {
	c := &Collector{
		queues: map[string]*spillway.Queue{},
		topics: map[string]*spillway.Topic{},
		descs:  newDescs(),
		bounds: DefaultBuckets,
	}
	c.Add(sources...)
	return c
}

// DefaultBuckets are the classic buckets of the latency histograms, in
// seconds: 1, 2.5 and 5 per decade from 1 µs to 10 s. (Native histograms
// resolve far finer; see the package doc.)
var DefaultBuckets = []float64{
	1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
	1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Shards makes the collector export per-shard metrics too (a shard label;
// Stats' Shards), and returns it. Off by default: a Queue of 64 shards
// adds six series per shard.
func (c *Collector) Shards(on bool) *Collector {
	c.mu.Lock()
	c.shards = on
	c.mu.Unlock()
	return c
}

// Add adds sources; one with the name of a source of the same kind
// replaces it.
func (c *Collector) Add(sources ...Source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range sources {
		switch {
		case s.queue != nil:
			c.queues[s.name] = s.queue
		case s.topic != nil:
			c.topics[s.name] = s.topic
		}
	}
}

// RemoveQueue stops exporting the named queue.
func (c *Collector) RemoveQueue(name string) {
	c.mu.Lock()
	delete(c.queues, name)
	c.mu.Unlock()
}

// RemoveTopic stops exporting the named topic.
func (c *Collector) RemoveTopic(name string) {
	c.mu.Lock()
	delete(c.topics, name)
	c.mu.Unlock()
}

// Describe sends the descriptions of every metric the collector may
// export.
func (c *Collector) Describe(ch chan<- *prom.Desc) {
	for _, d := range c.descs.all() {
		ch <- d
	}
}

// Collect sends the current value of every metric.
func (c *Collector) Collect(ch chan<- prom.Metric) {
	c.mu.RLock()
	shards := c.shards
	queues := maps.Clone(c.queues)
	topics := maps.Clone(c.topics)
	c.mu.RUnlock()
	var h spillway.Histograms
	for _, name := range slices.Sorted(maps.Keys(queues)) {
		h = spillway.Histograms{}
		st := queues[name].StatsWith(spillway.StatsOptions{Shards: shards, Histograms: &h})
		c.emit(ch, &c.descs.queue, &st, &h, name)
		for _, p := range st.Shards {
			c.emitShard(ch, &c.descs.queueShard, &p, name, strconv.Itoa(p.Shard))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		t := topics[name]
		st := t.StatsWith(spillway.StatsOptions{Shards: shards})
		c.emit(ch, &c.descs.topic, &st, nil, name)
		for _, p := range st.Shards {
			c.emitShard(ch, &c.descs.topicShard, &p, name, strconv.Itoa(p.Shard))
		}
		for _, sub := range t.Subscriptions() {
			h = spillway.Histograms{}
			st, err := t.SubscriptionStats(sub, spillway.StatsOptions{Shards: shards, Histograms: &h})
			if err != nil {
				continue // unsubscribed meanwhile
			}
			c.emit(ch, &c.descs.sub, &st, &h, name, sub)
			for _, p := range st.Shards {
				c.emitShard(ch, &c.descs.subShard, &p, name, sub, strconv.Itoa(p.Shard))
			}
		}
	}
}

// emit sends the metrics of one scope's Stats; h is nil for a scope
// without latencies (a Topic's own).
func (c *Collector) emit(ch chan<- prom.Metric, ds *scopeDescs, st *spillway.Stats, h *spillway.Histograms, labels ...string) {
	for _, m := range ds.stats {
		ch <- prom.MustNewConstMetric(m.desc, m.def.kind, m.def.value(st), labels...)
	}
	if h != nil && ds.wait != nil {
		ch <- newHistogram(ds.wait, &h.QueueWait, c.bounds, labels)
		ch <- newHistogram(ds.ack, &h.AckLatency, c.bounds, labels)
	}
}

// emitShard sends one shard's metrics.
func (c *Collector) emitShard(ch chan<- prom.Metric, ds *shardDescs, p *spillway.ShardStats, labels ...string) {
	for _, m := range ds.stats {
		ch <- prom.MustNewConstMetric(m.desc, m.def.kind, m.def.value(p), labels...)
	}
}
