package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/histogram"
)

// workload is one of bench's runs: Spillway's side and the channel's, on
// the same messages.
type workload struct {
	name, what string
	spillway   func(c *runConfig) (result, error)
	channel    func(c *runConfig) (result, error)
}

var workloads = []workload{
	{"queue", "one sender, one receiver, in memory (Queue, Ephemeral; the channel: buffered to a ring's size)",
		benchQueue, benchChanPair},
	{"spill", "a backlog: everything sent before it is received, 64 rings' worth and more, through the disk (Queue with a spill directory; the channel: buffered to hold it all in memory)",
		benchSpill, benchChanBacklog},
	{"topic", "one publisher, three subscriptions each read by its own receiver (Topic; the channel: one channel per subscription)",
		benchTopic, benchChanFanOut},
	{"persistent", "one sender, one receiver, every message in the log before Send returns (Queue, Persistent, SyncNever: survives kill -9, not a power loss)",
		benchPersistent, benchChanPair},
	{"persistent-topic", "one publisher, three subscriptions, every message in the topic's log before Publish returns (Topic, Persistent, SyncNever; the channel: one channel per subscription)",
		benchPersistentTopic, benchChanFanOut},
}

// benchConfig is what bench's flags say.
type benchConfig struct {
	workloads []string
	duration  time.Duration
	count     int
	size      int
	batch     int
	dir       string
	json      bool
	plot      string
	quiet     bool
	latency   bool
}

// runConfig is one run's: the flags, the messages, and its progress.
type runConfig struct {
	*benchConfig
	value    []byte // every message's value: Send takes it, nobody writes it
	progress atomic.Int64
	count    int // messages to send; 0: for duration
	most     int // with a duration: send no more than this (0: no bound)
}

// result is what one run measured.
type result struct {
	Workload     string  `json:"workload"`
	Impl         string  `json:"impl"` // spillway or chan
	Messages     int64   `json:"messages"`
	Seconds      float64 `json:"seconds"`
	MsgsPerSec   float64 `json:"msgs_per_sec"`
	NsPerMsg     float64 `json:"ns_per_msg"`
	MBPerSec     float64 `json:"mb_per_sec"`
	AllocsPerMsg float64 `json:"allocs_per_msg"`
	Spilled      uint64  `json:"spilled,omitempty"` // messages that went through the disk
	VsChan       float64 `json:"vs_chan,omitempty"` // Spillway's msgs/s over the channel's
	// Latency from send to receive of the timed messages (1 in
	// timedEvery, both sides), at full load: 0 if none was timed.
	Timed uint64  `json:"timed"`
	P50Ns float64 `json:"p50_ns"`
	P99Ns float64 `json:"p99_ns"`
}

// timedEvery: both sides time 1 in timedEvery messages, from send to
// receive, with one clock read at each end (Spillway's default
// LatencySampling; the channel carries the send time beside the message).
const timedEvery = 256

// setLatency fills r's latency from a snapshot.
func (r *result) setLatency(s *histogram.Snapshot) {
	r.Timed = s.Count()
	if r.Timed > 0 {
		r.P50Ns, r.P99Ns = float64(s.Quantile(0.5)), float64(s.Quantile(0.99))
	}
}

// setWait fills r's latency from Spillway's Stats.
func (r *result) setWait(l spillway.Latency) {
	r.Timed = l.Count
	r.P50Ns, r.P99Ns = float64(l.P50), float64(l.P99)
}

// timedMsg is what the channel side moves: the message, and its send time
// (unix ns) if it is timed.
type timedMsg struct {
	spillway.Message
	at int64
}

// stamp returns the send time of the i-th message, if it is timed.
func stamp(i int) int64 {
	if i%timedEvery != 0 {
		return 0
	}
	return time.Now().UnixNano()
}

// record records m's wait into h, if m is timed.
func (m *timedMsg) record(h *histogram.Histogram) {
	if m.at != 0 {
		h.Record(time.Duration(time.Now().UnixNano() - m.at))
	}
}

func runBench(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var c benchConfig
	var names string
	fs.StringVar(&names, "workload", "queue,spill,topic,persistent,persistent-topic", "comma-separated workloads: "+workloadNames())
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "how long each run sends (per workload and side)")
	fs.IntVar(&c.count, "count", 0, "messages per run instead of -duration (0: use -duration)")
	fs.IntVar(&c.size, "size", 128, "message value size in bytes")
	fs.IntVar(&c.batch, "batch", 1, "messages per send and per receive call (Spillway's batch calls; a channel moves one at a time)")
	fs.StringVar(&c.dir, "dir", "", "directory for the spill and persistent workloads (default: a new temporary one, removed after)")
	fs.BoolVar(&c.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&c.plot, "plot", "", "also write a PNG chart of the throughput to this file")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress bar (there is none when stderr is not a terminal)")
	fs.BoolVar(&c.latency, "latency", false, "instead of the workloads, the tail-latency table: one sender at 100k and 1M messages/s and unpaced, one receiver, every message's latency from its intended send time, through Spillway (memory, spill, persistent) and a channel, each for -duration")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if c.duration <= 0 && c.count <= 0 || c.size < 0 || c.batch < 1 || c.count < 0 {
		return usageError{"-duration (or -count) and -batch must be positive, -size not negative"}
	}
	for _, n := range strings.Split(names, ",") {
		if !slices.ContainsFunc(workloads, func(w workload) bool { return w.name == n }) {
			return usageError{fmt.Sprintf("no workload %q (there are %s)", n, workloadNames())}
		}
		c.workloads = append(c.workloads, n)
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "spillway-bench-")
		if err != nil {
			return fmt.Errorf("making a directory for the spill: %w (give one with -dir)", err)
		}
		defer func() { _ = os.RemoveAll(dir) }() // ours, temporary
		c.dir = dir
	}
	if c.latency {
		return runLatency(&c, stdout, stderr)
	}
	var results []result
	for _, w := range workloads {
		if !slices.Contains(c.workloads, w.name) {
			continue
		}
		rs, err := runWorkload(&c, w, stderr)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.name, err)
		}
		results = append(results, rs...)
	}
	m := describeMachine()
	if c.json {
		if err := writeJSON(stdout, &c, m, results); err != nil {
			return err
		}
	} else if err := writeTable(stdout, &c, m, results); err != nil {
		return err
	}
	if c.plot != "" {
		if err := writePlot(c.plot, m, results); err != nil {
			return fmt.Errorf("writing the plot: %w", err)
		}
	}
	return nil
}

func workloadNames() string {
	var names []string
	for _, w := range workloads {
		names = append(names, w.name)
	}
	return strings.Join(names, ", ")
}

// runWorkload runs w's Spillway side, then its channel side on as many
// messages.
func runWorkload(c *benchConfig, w workload, stderr io.Writer) ([]result, error) {
	value := make([]byte, c.size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	rc := &runConfig{benchConfig: c, value: value, count: c.count}
	sp, err := measure(rc, w.name, "spillway", stderr, w.spillway)
	if err != nil {
		return nil, err
	}
	cc := &runConfig{benchConfig: c, value: value, count: int(sp.Messages)}
	ch, err := measure(cc, w.name, "chan", stderr, w.channel)
	if err != nil {
		return nil, err
	}
	if ch.MsgsPerSec > 0 {
		sp.VsChan = sp.MsgsPerSec / ch.MsgsPerSec
	}
	return []result{sp, ch}, nil
}

// measure runs one side with a progress bar and fills in the rates.
func measure(rc *runConfig, name, impl string, stderr io.Writer, fn func(*runConfig) (result, error)) (result, error) {
	stop := showProgress(rc, name+" "+impl, stderr)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	r, err := fn(rc)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	stop()
	if err != nil {
		return r, err
	}
	r.Workload, r.Impl, r.Seconds = name, impl, elapsed.Seconds()
	if r.Messages > 0 {
		r.MsgsPerSec = float64(r.Messages) / elapsed.Seconds()
		r.NsPerMsg = float64(elapsed.Nanoseconds()) / float64(r.Messages)
		r.MBPerSec = r.MsgsPerSec * float64(rc.size) / 1e6
		r.AllocsPerMsg = float64(after.Mallocs-before.Mallocs) / float64(r.Messages)
	}
	return r, nil
}

// showProgress draws a bar on stderr while a run goes, if stderr is a
// terminal: messages out of -count, or time out of -duration. It returns
// what stops it.
func showProgress(rc *runConfig, desc string, stderr io.Writer) func() {
	if f, ok := stderr.(*os.File); rc.quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	total := int64(rc.count)
	if total == 0 {
		total = rc.duration.Milliseconds()
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%-22s", desc)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if rc.count > 0 {
					_ = bar.Set64(rc.progress.Load()) // a bar that cannot draw only loses the drawing
				} else {
					_ = bar.Set64(min(total, time.Since(start).Milliseconds()))
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		_ = bar.Finish() // as above
	}
}

// sender decides when a run's sending ends: after rc.count messages, or
// once rc.duration has passed (looked at every 256 messages).
type sender struct {
	rc       *runConfig
	deadline time.Time
	sent     int64
}

func newSender(rc *runConfig) *sender {
	return &sender{rc: rc, deadline: time.Now().Add(rc.duration)}
}

// next returns how many messages to send in the next call (at most
// rc.batch), 0 when sending is done.
func (s *sender) next() int {
	if s.rc.count > 0 {
		return min(s.rc.batch, s.rc.count-int(s.sent))
	}
	if s.sent&255 < int64(s.rc.batch) && time.Now().After(s.deadline) {
		return 0
	}
	if s.rc.most > 0 {
		return min(s.rc.batch, s.rc.most-int(s.sent))
	}
	return s.rc.batch
}

func (s *sender) done(n int) {
	s.sent += int64(n)
	if s.rc.count > 0 {
		s.rc.progress.Store(s.sent)
	}
}

// pair runs send on a goroutine of its own and receive on this one; send
// returns how many it sent, receive is told once that is known (total),
// and returns how many it received.
func pair(send func() (int64, error), receive func(total *atomic.Int64, sending context.Context) (int64, error)) (int64, error) {
	var total atomic.Int64
	total.Store(-1)
	sending, done := context.WithCancel(context.Background())
	var sendErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done()
		var n int64
		n, sendErr = send()
		total.Store(n)
	}()
	got, err := receive(&total, sending)
	wg.Wait()
	if err := errors.Join(sendErr, err); err != nil {
		return got, err
	}
	if n := total.Load(); got != n {
		return got, fmt.Errorf("received %d of %d messages", got, n)
	}
	return got, nil
}

// queueSend sends messages to q until the sender says stop.
func queueSend(rc *runConfig, q *spillway.Queue) (int64, error) {
	s := newSender(rc)
	ctx := context.Background()
	batch := make([]spillway.Message, rc.batch)
	for n := s.next(); n > 0; n = s.next() {
		if n == 1 {
			if err := q.Send(ctx, spillway.Message{Value: rc.value}); err != nil {
				return s.sent, err
			}
		} else {
			for i := range batch[:n] {
				batch[i] = spillway.Message{Value: rc.value}
			}
			if err := q.SendBatch(ctx, batch[:n]); err != nil {
				return s.sent, err
			}
		}
		s.done(n)
	}
	return s.sent, nil
}

// receiver is what queueReceive takes from: a Queue or a Subscription.
type receiver interface {
	ReceiveBatch(ctx context.Context, dst []spillway.Delivery) (int, error)
	TryReceiveBatch(dst []spillway.Delivery) (int, error)
}

// queueReceive receives until it has all that was sent: while sending
// goes on it waits for messages; once the sender is done it drains what is
// left without waiting.
func queueReceive(rc *runConfig, r receiver, total *atomic.Int64, sending context.Context) (int64, error) {
	dst := make([]spillway.Delivery, rc.batch)
	var got int64
	for {
		if t := total.Load(); t >= 0 && got >= t {
			return got, nil
		}
		var n int
		var err error
		if sending.Err() == nil {
			n, err = r.ReceiveBatch(sending, dst)
			if errors.Is(err, context.Canceled) {
				continue // sending is done: drain
			}
		} else if n, err = r.TryReceiveBatch(dst); errors.Is(err, spillway.ErrEmpty) {
			runtime.Gosched() // a spilled batch still being decoded
			continue
		}
		if err != nil {
			return got, err
		}
		got += int64(n)
		clear(dst[:n])
	}
}

func benchQueue(rc *runConfig) (result, error) {
	return benchQueueWith(rc, spillway.Options{})
}

func benchPersistent(rc *runConfig) (result, error) {
	dir, err := os.MkdirTemp(rc.dir, "persistent-")
	if err != nil {
		return result{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }() // ours, temporary
	return benchQueueWith(rc, spillway.Options{Dir: dir, Durability: spillway.Persistent, Sync: spillway.SyncNever})
}

func benchQueueWith(rc *runConfig, opts spillway.Options) (result, error) {
	q, err := spillway.OpenQueue(opts)
	if err != nil {
		return result{}, err
	}
	n, err := pair(func() (int64, error) { return queueSend(rc, q) },
		func(total *atomic.Int64, sending context.Context) (int64, error) {
			return queueReceive(rc, q, total, sending)
		})
	st := q.Stats()
	r := result{Messages: n, Spilled: st.Spilled}
	r.setWait(st.QueueWait)
	return r, errors.Join(err, q.Close())
}

// maxBacklog bounds the spill workload's backlog in a run by duration:
// 2 Mi messages, 256 MiB of values at the default size.
const maxBacklog = 2 << 20

// benchSpill sends everything first, then receives it: what does not fit
// in the rings goes through the disk and back.
func benchSpill(rc *runConfig) (result, error) {
	dir, err := os.MkdirTemp(rc.dir, "spill-")
	if err != nil {
		return result{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }() // ours, temporary
	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, RingSize: 1024})
	if err != nil {
		return result{}, err
	}
	// A backlog sent for the whole duration could fill the disk and, on
	// the channel's side, memory: a run by duration sends at most
	// maxBacklog messages.
	rc.most = maxBacklog
	n, err := queueSend(rc, q)
	if err == nil {
		var total atomic.Int64
		total.Store(n)
		sent, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = queueReceive(rc, q, &total, sent)
	}
	st := q.Stats()
	r := result{Messages: n, Spilled: st.Spilled}
	r.setWait(st.QueueWait)
	return r, errors.Join(err, q.Close())
}

func benchTopic(rc *runConfig) (result, error) { return benchTopicWith(rc, spillway.Options{}) }

func benchPersistentTopic(rc *runConfig) (result, error) {
	dir, err := os.MkdirTemp(rc.dir, "persistent-topic-")
	if err != nil {
		return result{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }() // ours, temporary
	return benchTopicWith(rc, spillway.Options{Dir: dir, Durability: spillway.Persistent, Sync: spillway.SyncNever})
}

func benchTopicWith(rc *runConfig, opts spillway.Options) (result, error) {
	t, err := spillway.OpenTopic(opts)
	if err != nil {
		return result{}, err
	}
	const subs = 3
	var rs [subs]*spillway.Subscription
	for i := range rs {
		if rs[i], err = t.Subscribe(fmt.Sprintf("sub-%d", i)); err != nil {
			return result{}, errors.Join(err, t.Close())
		}
	}
	n, err := pair(func() (int64, error) {
		s := newSender(rc)
		ctx := context.Background()
		batch := make([]spillway.Message, rc.batch)
		for n := s.next(); n > 0; n = s.next() {
			for i := range batch[:n] {
				batch[i] = spillway.Message{Value: rc.value}
			}
			if err := t.PublishBatch(ctx, batch[:n]); err != nil {
				return s.sent, err
			}
			s.done(n)
		}
		return s.sent, nil
	}, func(total *atomic.Int64, sending context.Context) (int64, error) {
		var wg sync.WaitGroup
		var errs [subs]error
		var got [subs]int64
		for i := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = queueReceive(rc, rs[i], total, sending)
			}()
		}
		wg.Wait()
		for i := range got[1:] {
			if got[i+1] != got[0] {
				errs[0] = errors.Join(errs[0], fmt.Errorf("subscriptions received %d and %d", got[0], got[i+1]))
			}
		}
		return got[0], errors.Join(errs[:]...)
	})
	st := t.Stats()
	r := result{Messages: n, Spilled: st.Spilled}
	r.setWait(st.QueueWait)
	return r, errors.Join(err, t.Close())
}

// benchChanPair moves rc.count messages through a channel buffered as a
// Queue's default ring.
func benchChanPair(rc *runConfig) (result, error) {
	ch := make(chan timedMsg, 4096)
	var h histogram.Histogram
	n, err := pair(func() (int64, error) {
		for i := range rc.count {
			ch <- timedMsg{spillway.Message{Value: rc.value}, stamp(i)}
			if i&255 == 0 {
				rc.progress.Store(int64(i))
			}
		}
		close(ch)
		return int64(rc.count), nil
	}, func(*atomic.Int64, context.Context) (int64, error) {
		var got int64
		for m := range ch {
			m.record(&h)
			got++
		}
		return got, nil
	})
	r := result{Messages: n}
	r.setLatency(h.Snapshot(new(histogram.Snapshot)))
	return r, err
}

// benchChanBacklog fills a channel that holds all rc.count messages, then
// drains it.
func benchChanBacklog(rc *runConfig) (result, error) {
	ch := make(chan timedMsg, rc.count)
	var h histogram.Histogram
	for i := range rc.count {
		ch <- timedMsg{spillway.Message{Value: rc.value}, stamp(i)}
		if i&255 == 0 {
			rc.progress.Store(int64(i / 2))
		}
	}
	close(ch)
	var got int64
	for m := range ch {
		m.record(&h)
		got++
	}
	r := result{Messages: got}
	r.setLatency(h.Snapshot(new(histogram.Snapshot)))
	return r, nil
}

// benchChanFanOut sends rc.count messages to three channels, one receiver
// each.
func benchChanFanOut(rc *runConfig) (result, error) {
	const subs = 3
	var chs [subs]chan timedMsg
	for i := range chs {
		chs[i] = make(chan timedMsg, 4096)
	}
	var got [subs]int64
	var h histogram.Histogram
	var wg sync.WaitGroup
	for i := range chs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range chs[i] {
				m.record(&h)
				got[i]++
			}
		}()
	}
	for i := range rc.count {
		m := timedMsg{spillway.Message{Value: rc.value}, stamp(i)}
		for _, ch := range chs {
			ch <- m
		}
		if i&255 == 0 {
			rc.progress.Store(int64(i))
		}
	}
	for _, ch := range chs {
		close(ch)
	}
	wg.Wait()
	r := result{Messages: got[0]}
	r.setLatency(h.Snapshot(new(histogram.Snapshot)))
	return r, nil
}
