package spillway

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/codec"
)

// syncer makes a Persistent queue's writes durable in rounds: a round
// fdatasyncs every shard's dirty files (log segments, journal, cursor) at
// once, and serves every caller that was waiting when it started (group
// commit: the more callers wait, the more each sync covers).
//
// Who may do what: any goroutine calls wait; one goroutine (loop) runs
// the rounds; Sync calls round directly too. next is the round that has
// not started yet, which callers join; it is swapped under mu when a round
// starts, so a round covers everything written before its callers joined
// it. After the loop's final round (Close), next is nil and wait waits for
// Close to finish the files instead.
type syncer struct {
	q    syncOwner
	mu   sync.Mutex
	next *syncRound // nil once the loop has finished
	kick chan struct{}
	stop chan struct{}
	// closed is closed once Close has synced and closed every file.
	closed chan struct{}
	rounds atomic.Uint64 // rounds done (tests wait on it)
	// Owned by the loop: how many callers the last round served, and how
	// long its syncs took (gather).
	lastWaiters int
	lastTook    time.Duration
	// keylessShard is the shard keylessShard messages go to under SyncAlways, moved
	// on once a round: a round's keylessShard messages then need the sync of
	// one shard's log, not of every shard's.
	keylessShard atomic.Uint32
}

// syncRound is one round of syncs: done is closed when it is over, with
// err its outcome; need gathers what its callers need synced (guarded by
// the syncer's mu until the round starts).
type syncRound struct {
	done    chan struct{}
	err     error
	need    syncNeed
	waiters int
}

// syncNeed says which of a shard's files a caller needs synced: the logs
// (senders), the journals (acks), the cursors (receivers, under AutoAck).
type syncNeed uint8

const (
	needLog syncNeed = 1 << iota
	needJournal
	needCursor

	needState = needJournal | needCursor // what deleting settled segments rests on
	needAll   = needLog | needState
)

// syncOwner is what a syncer syncs: a Persistent Queue or Topic.
type syncOwner interface {
	// syncAll syncs the dirty files of the kinds need names, and fails
	// for good (storageErr) if one fails.
	syncAll(need syncNeed) error
	storageErr() error
}

func newSyncer(q syncOwner) *syncer {
	return &syncer{q: q, next: &syncRound{done: make(chan struct{})}, kick: make(chan struct{}, 1), stop: make(chan struct{}), closed: make(chan struct{})}
}

// wait returns once a round that started after the call has ended, with
// its outcome: what the caller wrote before calling to the files it needs
// is then durable. Once the syncer has finished (Close), it waits for
// Close, which syncs everything; a goroutine that Close joins must call
// waitRound instead.
func (y *syncer) wait(need syncNeed) error {
	err := y.waitRound(need)
	if errors.Is(err, errSyncerDone) {
		<-y.closed
		return y.q.storageErr()
	}
	return err
}

// errSyncerDone: the syncer has run its final round.
var errSyncerDone = errors.New("spillway: syncer done")

// waitRound is wait, except that once the syncer has finished it returns
// errSyncerDone at once: for the queue's own goroutines, which Close joins
// before it syncs.
func (y *syncer) waitRound(need syncNeed) error {
	y.mu.Lock()
	r := y.next
	if r != nil {
		r.need |= need
		r.waiters++
	}
	y.mu.Unlock()
	if r == nil {
		return errSyncerDone
	}
	select {
	case y.kick <- struct{}{}:
	default:
	}
	<-r.done
	return r.err
}

// loop runs rounds as callers ask for them, until stop; its final round
// serves whoever is still waiting.
func (y *syncer) loop() {
	for {
		select {
		case <-y.kick:
			y.round(false)
		case <-y.stop:
			y.round(true)
			return
		}
	}
}

// round runs one round of syncs for the callers waiting on next.
func (y *syncer) round(final bool) {
	if !final {
		y.gather()
	}
	y.mu.Lock()
	r := y.next
	if final {
		y.next = nil
	} else {
		y.next = &syncRound{done: make(chan struct{})}
	}
	y.mu.Unlock()
	y.keylessShard.Add(1)
	need := r.need
	if final {
		need = needAll
	}
	start := time.Now()
	r.err = y.q.syncAll(need)
	// The callers to gather: the most a recent round served, forgotten
	// one a round, so that the rounds do not settle at whatever part of
	// the callers made it back in time once.
	y.lastTook, y.lastWaiters = time.Since(start), max(r.waiters, y.lastWaiters-1)

	close(r.done)
	y.rounds.Add(1)
}

// gather lets callers released by the last round join the next one before
// it starts: when recent rounds served several, it waits until as many
// wait again, or for at most as long as the last round's syncs took, with the
// processor yielded. Without it a round would start the moment one caller
// is back, and each would serve about half the callers.
func (y *syncer) gather() {
	if y.lastWaiters < 2 {
		return
	}
	deadline := time.Now().Add(min(y.lastTook, time.Millisecond))
	for {
		y.mu.Lock()
		n := y.next.waiters
		y.mu.Unlock()
		if n >= y.lastWaiters || !time.Now().Before(deadline) {
			return
		}
		runtime.Gosched()
	}
}

// syncAll fdatasyncs every shard's dirty files of the kinds need names, in
// parallel, and then publishes, per shard, how much of the log is durable
// (receivers under SyncAlways read no further). A failure is sticky: the
// queue accepts nothing more.
func (q *Queue) syncAll(need syncNeed) error {
	if err := q.storageErr(); err != nil {
		return err
	}
	var jobs []func() error
	stateJobs := 0
	marks := make([]uint64, len(q.shards))
	for i, s := range q.shards {
		d := s.d
		marks[i] = d.log.NextOffset() // before the sync: what it covers
		if need&needLog != 0 && d.log.Dirty() {
			jobs = append(jobs, d.log.Sync)
		}
		if need&needJournal != 0 && d.journal.dirty.Load() {
			jobs = append(jobs, d.journal.sync)
			stateJobs++
		}
		if need&needCursor != 0 && d.cursor.dirty.Load() {
			jobs = append(jobs, d.cursor.sync)
			stateJobs++
		}
	}
	err := runAll(jobs)
	q.fsyncs.Add(uint64(stateJobs)) // logs count their own (Log.Stats)
	if err != nil {
		return q.failStorage(err)
	}
	for i, s := range q.shards {
		if need&needLog != 0 && s.d.synced.Load() < marks[i] {
			s.d.synced.Store(marks[i])
		}
	}
	if q.syncAlways() {
		q.receivers.WakeAll()
	}
	return nil
}

// runAll runs jobs at once (each fdatasync waits for its device, not for
// the CPU), the first on the caller's goroutine, and joins their errors.
func runAll(jobs []func() error) error {
	switch len(jobs) {
	case 0:
		return nil
	case 1:
		return jobs[0]()
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, run := range jobs[1:] {
		wg.Go(func() { errs[i+1] = run() })
	}
	errs[0] = jobs[0]()
	wg.Wait()
	return errors.Join(errs...)
}

// storageErr returns the queue's storage failure, if any.
func (q *Queue) storageErr() error {
	if p := q.storage.Load(); p != nil {
		return *p
	}
	return nil
}

// failStorage records err as the queue's storage failure (the first one
// stays) and returns it, as ErrStorage: after a failed write or sync
// nothing more is accepted, and nothing is reported durable, until the
// queue is reopened (fsyncgate: a failed sync retried may "succeed" with
// the data gone). The failure is also reported to OnError, once.
func (q *Queue) failStorage(err error) error {
	if !errors.Is(err, ErrStorage) {
		err = fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if q.storage.CompareAndSwap(nil, &err) {
		q.report(err)
		q.receivers.WakeAll()
		for _, s := range q.shards {
			s.senders.WakeAll()
		}
	}
	return q.storageErr()
}

// Sync makes everything the queue accepted so far, and every ack,
// durable: after it returns nil, a power loss takes none of it back. It
// fails with ErrStorage if the disk failed (now or before), ErrClosed
// after Close; on an Ephemeral queue it does nothing.
func (q *Queue) Sync() error {
	if q.closed.Load() {
		return ErrClosed
	}
	if !q.persistent {
		return nil
	}
	return q.sy.wait(needAll)
}

// housekeeper runs a Persistent queue's periodic work every SyncEvery:
// under SyncInterval, a sync round; for every policy, the deletion of the
// log segments whose messages are all settled (and, under ManualAck, the
// move of their last stragglers into the journal).
func (q *Queue) housekeeper(tick <-chan time.Time, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-tick:
		}
		if q.opts.Sync == SyncInterval {
			if err := q.sy.waitRound(needAll); err != nil {
				continue // sticky, and reported by failStorage
			}
		}
		q.housekeep()
	}
}

// housekeep deletes, in every shard, the segments whose messages are all
// settled, once that is durable, and lets senders waiting for disk space
// try again.
func (q *Queue) housekeep() {
	defer q.housekeeps.Add(1)
	var trims []func()
	for _, s := range q.shards {
		d := s.d
		// Senders waiting for room on a full disk try again once a tick:
		// room may come from outside the queue.
		s.senders.WakeAll()
		if q.opts.Ack == ManualAck || s.parked.Load() > 0 { // parked: delayed messages, under AutoAck too
			s.moveStragglers()
		}
		segs := d.log.Segments()
		floor := q.dedupFloor(segs, s.trimFloor(), q.opts.Clock.Now().UnixNano())
		if len(segs) < 2 || segs[0].Next > floor {
			continue
		}
		trims = append(trims, func() {
			d.log.Trim(floor)
			s.senders.WakeAll() // room on disk for those waiting for it
		})
	}
	if len(trims) == 0 {
		return
	}
	if q.housekeepHook != nil {
		q.housekeepHook()
	}
	// What says the messages are settled (the cursor, the journal) must
	// be durable before the segments go: a power loss must not bring back
	// a state that needs them.
	if err := q.sy.waitRound(needState); err != nil {
		return
	}
	for _, trim := range trims {
		trim()
	}
}

// trimFloor returns the offset before which s's messages are all settled:
// the oldest unsettled one's (moved ones aside), or the cursor.
func (s *qshard) trimFloor() uint64 {
	floor := s.d.delivered.Load()
	s.leaseMu.Lock()
	if l := s.byOffset.head; l != nil {
		floor = min(floor, l.offset)
	}
	s.leaseMu.Unlock()
	return floor
}

// maxStragglers bounds the unsettled messages of an otherwise settled
// segment that housekeeping moves to the journal so that the segment can
// go: a segment with more is in flight, not straggling.
const maxStragglers = 1024

// moveStragglers frees the oldest segment of s from the few unsettled
// messages that keep it (a lease held for long, a message nacked with a
// long delay) once the log has moved two segments past it: their bytes go
// to the journal (kind moved), which keeps them until they are settled.
// Without this one slow message would pin every later segment.
func (s *qshard) moveStragglers() {
	segs := s.d.log.Segments()
	if len(segs) < 3 || !segs[0].Sealed || s.d.delivered.Load() < segs[0].Next {
		return
	}
	s.ackBook.moveBelow(segs[0].Next, maxStragglers)
}

// moveBelow moves the unsettled messages before offset end to the
// journal (kind moved), if there are at most limit of them.
func (s *ackBook) moveBelow(end uint64, limit int) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	n := 0
	for l := s.byOffset.head; l != nil && l.offset < end; l = l.onext {
		if n++; n > limit {
			return
		}
	}
	for l := s.byOffset.head; l != nil && l.offset < end; l = s.byOffset.head {
		batch, err := s.movedBatch(l)
		if err == nil {
			err = s.j.moved(l.offset, uint32(l.attempt), s.notBefore(l), batch)
		}
		if err != nil {
			s.persist(err)
			return
		}
		s.byOffset.remove(l)
		s.moved.push(l)
	}
}

// movedBatch encodes l's message as the batch the journal keeps for it,
// sealed if the journal seals.
func (s *ackBook) movedBatch(l *lease) ([]byte, error) {
	m := l.msg.message()
	batch, err := messageBatch(l.offset, &m, l.sent)
	if err != nil || s.j == nil || s.j.keys == nil {
		return batch, err
	}
	return s.j.keys.Seal(nil, batch, s.j.context)
}

// messageBatch encodes m, published at sent (unix ns; 0: not known), as a
// batch of one record at offset off.
func messageBatch(off uint64, m *Message, sent int64) ([]byte, error) {
	rec := [1]codec.Record{{Key: m.Key, Value: m.Value, Timestamp: sent}}
	if !m.ExpiresAt.IsZero() {
		rec[0].ExpiresAt = m.ExpiresAt.UnixNano()
	}
	if len(m.Headers) > 0 {
		hs := make([]codec.Header, len(m.Headers))
		for i, h := range m.Headers {
			hs[i] = codec.Header{Key: []byte(h.Key), Value: h.Value}
		}
		rec[0].Headers = hs
	}
	return codec.AppendPlain(nil, off, rec[:])
}

// snapshot writes s's whole state as a checkpoint. REQUIRES: s.leaseMu.
func (s *qshard) snapshot(cp *checkpoint) {
	s.ackBook.snapshot(cp, s.d.delivered.Load())
}

// snapshot writes the book's unsettled messages, with the cursor
// delivered, as a checkpoint. REQUIRES: s.leaseMu.
func (s *ackBook) snapshot(cp *checkpoint, delivered uint64) {
	cp.delivered = delivered
	cp.manual = s.g.opts.Ack == ManualAck
	for l := s.byOffset.head; l != nil; l = l.onext {
		cp.add(l.offset, uint32(l.attempt), s.notBefore(l))
	}
	for l := s.moved.head; l != nil; l = l.onext {
		batch, err := s.movedBatch(l)
		if err != nil {
			s.persist(err)
			continue
		}
		cp.addMoved(l.offset, uint32(l.attempt), s.notBefore(l), batch)
	}
}
