package spillway

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spillway-io/spillway/mmap"
)

// recorder is a slog.Handler that keeps every record, at every level.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// find returns the attributes of the records with message msg.
func (r *recorder) find(msg string) []map[string]slog.Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]slog.Value
	for _, rec := range r.recs {
		if rec.Message == msg {
			attrs := map[string]slog.Value{"level": slog.StringValue(rec.Level.String())}
			rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
			out = append(out, attrs)
		}
	}
	return out
}

// waitEvent waits until r has n records with message msg and returns them.
func (r *recorder) waitEvent(t *testing.T, msg string, n int) []map[string]slog.Value {
	t.Helper()
	waitFor(t, msg, func() bool { return len(r.find(msg)) >= n })
	return r.find(msg)
}

func TestEventsSpill(t *testing.T) {
	var rec recorder
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 4, Logger: slog.New(&rec)})
	ctx := context.Background()
	for i := range 20 {
		if err := q.Send(ctx, msg(0, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	started := rec.waitEvent(t, EventSpillStarted, 1)
	if started[0]["shard"].Int64() != 0 || started[0]["level"].String() != "INFO" {
		t.Fatalf("spill started: %v", started[0])
	}
	for range 20 {
		if _, err := q.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ended := rec.waitEvent(t, EventSpillEnded, 1)
	if got := ended[0]["spilled"].Uint64(); got != q.Stats().Spilled || got == 0 {
		t.Fatalf("spill ended with %d spilled, Stats says %d", got, q.Stats().Spilled)
	}
}

func TestEventsDiskFull(t *testing.T) {
	var rec recorder
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 4, MaxMessageBytes: 64 << 10,
		MaxDiskBytes: 4 << 20, Compression: None, Logger: slog.New(&rec)})
	big := make([]byte, 32<<10)
	var full int
	for i := 0; full < 3 && i < 1000; i++ {
		if err := q.TrySend(Message{Value: big}); errors.Is(err, ErrDiskFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full < 3 {
		t.Fatal("the quota never filled")
	}
	if evs := rec.find(EventDiskFull); len(evs) != 1 || evs[0]["level"].String() != "WARN" {
		t.Fatalf("disk full events: %v, want one at WARN", evs)
	}
}

func TestEventsLeaseAndDeadLetter(t *testing.T) {
	var rec recorder
	clock := NewManualClock(time.Unix(0, 0))
	q := openQueue(t, Options{Shards: 1, Ack: ManualAck, AckTimeout: time.Second, MaxAttempts: 2, Clock: clock, Logger: slog.New(&rec)})
	ctx := context.Background()
	if err := q.Send(ctx, Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	d, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := q.clock.reaped.Load()
	clock.Advance(2 * time.Second)
	waitFor(t, "the reaper", func() bool { return q.clock.reaped.Load() > before })
	exp := rec.waitEvent(t, EventLeaseExpired, 1)
	if exp[0]["offset"].Uint64() != d.Offset || exp[0]["attempt"].Int64() != 1 || exp[0]["level"].String() != "DEBUG" {
		t.Fatalf("lease expired: %v", exp[0])
	}
	d, err = q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Nack(0); err != nil { // the last attempt: no dead-letter queue, dropped
		t.Fatal(err)
	}
	dl := rec.waitEvent(t, EventDeadLetter, 1)
	if dl[0]["attempts"].Int64() != 2 || !dl[0]["dropped"].Bool() {
		t.Fatalf("dead letter: %v", dl[0])
	}
}

func TestEventsFailureAndRecovery(t *testing.T) {
	var rec recorder
	fs := mmap.NewFaultFS(nil)
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 4, Compression: S2, fs: fs, Logger: slog.New(&rec)})
	fs.Inject(mmap.Fault{Op: mmap.OpWrite, Path: ".seg", Err: syscall.EIO})
	for i := range 200 {
		if err := q.Send(context.Background(), msg(0, i, 0)); err != nil && !errors.Is(err, ErrSpillFailed) && !errors.Is(err, mmap.ErrReadOnly) {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for {
		if _, err := q.TryReceive(); err != nil {
			break
		}
	}
	fail := rec.waitEvent(t, EventFailure, 1)
	if err, ok := fail[0]["error"].Any().(error); !ok || !errors.Is(err, syscall.EIO) || fail[0]["level"].String() != "ERROR" {
		t.Fatalf("failure event: %v", fail[0])
	}

	dir := t.TempDir()
	p, err := OpenQueue(Options{Dir: dir, Durability: Persistent})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), Message{Value: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	closeOK(t, p)
	p = openQueue(t, Options{Dir: dir, Durability: Persistent, Logger: slog.New(&rec)})
	recs := rec.find(EventRecovered)
	if len(recs) != 1 || recs[0]["messages"].Uint64() != 1 || p.Recovery().Messages != 1 || recs[0]["level"].String() != "INFO" {
		t.Fatalf("recovered: %v", recs)
	}
	want := []string{"dir", "messages", "redelivered", "skipped", "lost", "truncated_bytes", "quarantined", "segments", "scanned", "took", "level"}
	for _, k := range want {
		if _, ok := recs[0][k]; !ok {
			t.Fatalf("recovered lacks %s: %v", k, slices.Collect(maps.Keys(recs[0])))
		}
	}
}

// A corrupt batch between good ones in the active segment is moved aside
// at open: one EventQuarantined says where and what was lost, and
// EventRecovered is a warning that counts it.
func TestEventQuarantined(t *testing.T) {
	fs := mmap.NewMemFS()
	opts := oneShard(fs)
	fill(t, opts, 100)
	segs := segmentsOf(t, fs, 0)
	flipInBatch(t, fs, segs[len(segs)-1], 9) // the active segment's tenth batch
	var rec recorder
	opts.Logger = slog.New(&rec)
	q := openPersistent(t, opts)
	defer closeQueue(t, q)
	qs := rec.find(EventQuarantined)
	if len(qs) != 1 || qs[0]["level"].String() != "WARN" || qs[0]["batches"].Int64() != 1 || qs[0]["end"].Uint64()-qs[0]["first"].Uint64() != 1 {
		t.Fatalf("quarantined: %v", qs)
	}
	for _, k := range []string{"shard", "segment", "position", "bytes", "sidecar", "reason"} {
		if _, ok := qs[0][k]; !ok {
			t.Fatalf("quarantined lacks %s: %v", k, qs[0])
		}
	}
	recs := rec.find(EventRecovered)
	if len(recs) != 1 || recs[0]["level"].String() != "WARN" || recs[0]["quarantined"].Int64() != 1 || q.Recovery().Quarantined != 1 {
		t.Fatalf("recovered: %v; recovery %+v", recs, q.Recovery())
	}
}
