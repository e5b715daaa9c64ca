package mmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A mapped log (Options.Mapped) keeps the work of a segment's first and
// last moments off its appender, on a goroutine of its own (the
// preparer):
//
//   - The next segment is made ahead of need, under a temporary name:
//     created, reserved at its full size, mapped writable, and faulted in
//     whole. The first store to a page of a new file costs more than the
//     rest of an append; faulting the pages in ahead (one system call per
//     chunk) costs less, and not on the appender's time. When the active
//     segment fills, roll stamps the prepared one's header with its base,
//     renames it to its segment name, and appends on.
//   - A segment the log moved on from is synced (under a syncing policy)
//     and then sealed, so that the seal never vouches for data that is not
//     on disk.
//
// Under SyncManual the directory entry of a segment renamed into place is
// synced by the next Sync, before the data it covers counts as durable.
//
// Invariants: prepared and sealQueue are guarded by Log.mu; the preparer
// owns a prepared segment until it hands it over under mu, and holds a
// reference on each queued segment until it has sealed it. Close stops the
// preparer before closing files, then seals what is still queued and
// removes the prepared file.
const preparedName = "prepared.tmp" // removed by recovery, as every *.tmp

// startPreparer starts the preparer of a mapped log. It prepares a
// segment once the log has one to follow: an empty log reserves nothing.
func (l *Log) startPreparer() {
	l.prepKick = make(chan struct{}, 1)
	l.prepStop = make(chan struct{})
	l.prepDone.Add(1)
	go l.prepareLoop()
	if len(l.segments()) > 0 {
		l.kickPreparer()
	}
}

func (l *Log) kickPreparer() {
	if l.prepKick == nil {
		return
	}
	select {
	case l.prepKick <- struct{}{}:
	default:
	}
}

func (l *Log) prepareLoop() {
	defer l.prepDone.Done()
	for {
		select {
		case <-l.prepStop:
			return
		case <-l.prepKick:
		}
		l.sealQueued()
		l.mu.Lock()
		need := l.prepared == nil && l.failed.Load() == nil && !l.closed.Load()
		l.mu.Unlock()
		if !need {
			continue
		}
		s, err := l.prepare()
		if err != nil {
			continue // roll creates the segment itself, and reports what fails
		}
		l.mu.Lock()
		if l.prepared == nil && !l.closed.Load() {
			l.prepared, s = s, nil
		}
		l.mu.Unlock()
		if s != nil {
			l.discard(s)
		}
	}
}

// prepare makes a segment ready for appends under the temporary name: the
// quota charged, the file reserved, mapped writable and faulted in.
func (l *Log) prepare() (*segment, error) {
	if q := l.opts.Quota; q != nil && !q.reserve(l.opts.SegmentSize) {
		return nil, ErrDiskFull
	}
	if q := l.opts.MaxBytes; q > 0 && l.diskBytes.Load()+l.opts.SegmentSize > q {
		if q := l.opts.Quota; q != nil {
			q.release(l.opts.SegmentSize)
		}
		return nil, ErrDiskFull
	}
	path := filepath.Join(l.dir, preparedName)
	_ = l.fs.Remove(path)
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err = f.Grow(l.opts.SegmentSize); err != nil {
			_ = f.Close()
		}
	}
	var s *segment
	if err == nil {
		if s, err = mapSegment(l.fs, f, path, segHeader{size: l.opts.SegmentSize}); err != nil {
			_ = f.Close()
		}
	}
	if err == nil {
		if err = s.mapWritable(); err != nil {
			_ = s.release()
		}
	}
	if err != nil {
		_ = l.fs.Remove(path)
		if q := l.opts.Quota; q != nil {
			q.release(l.opts.SegmentSize)
		}
		return nil, err
	}
	if s.prefault {
		// Fault in everything, a chunk at a time; the appender then has
		// nothing left to fault in.
		for from := int64(0); from < s.size; from += prefaultChunk {
			s.populate(from, min(from+prefaultChunk, s.size))
		}
		s.prefault = false
	}
	return s, nil
}

// discard removes a prepared segment that was not used.
func (l *Log) discard(s *segment) {
	_ = s.release()
	_ = l.fs.Remove(s.path)
	if q := l.opts.Quota; q != nil {
		q.release(s.size)
	}
}

// takePrepared turns the prepared segment into the segment for base
// h.base: its header stamped, its file renamed into place. REQUIRES: l.mu,
// l.prepared set.
func (l *Log) takePrepared(h segHeader) (*segment, error) {
	s := l.prepared
	l.prepared = nil
	defer l.kickPreparer()
	name := segName(h.base)
	path := filepath.Join(l.dir, name)
	if _, err := s.f.WriteAt(h.marshal(), 0); err != nil {
		l.discard(s)
		return nil, err
	}
	if err := l.fs.Rename(s.path, path); err != nil {
		l.discard(s)
		return nil, err
	}
	s.name, s.path, s.base, s.created, s.gap = name, path, h.base, h.created, h.flags&segGap != 0
	s.end.Store(segHeaderSize)
	s.next.Store(h.base)
	s.lastAt.Store(h.created)
	l.dirDirty.Store(true)
	return s, nil
}

// queueSeal hands old, the segment the log just moved on from, to the
// preparer for its sync and seal. REQUIRES: l.mu.
func (l *Log) queueSeal(old *segment) {
	old.acquire()
	l.sealQueue = append(l.sealQueue, old)
	l.kickPreparer()
}

// sealQueued syncs and seals the segments queued for it.
func (l *Log) sealQueued() {
	l.mu.Lock()
	q := l.sealQueue
	l.sealQueue = nil
	l.mu.Unlock()
	for _, s := range q {
		if err := l.syncAndSeal(s); err != nil && !errors.Is(err, ErrClosed) {
			_ = l.fail(err)
		}
		_ = s.release()
	}
}

// syncAndSeal makes s's data durable (under a syncing policy), then
// writes its seal. A retired segment needs neither.
func (l *Log) syncAndSeal(s *segment) error {
	if s.retired.Load() {
		return nil
	}
	if l.opts.Sync != SyncNever && s.dirty.Swap(false) {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", s.name, err)
		}
		l.syncs.Add(1)
	}
	if err := s.seal(); err != nil {
		return fmt.Errorf("sealing %s: %w", s.name, err)
	}
	return nil
}

// stopPreparer stops the preparer, seals what is queued and removes the
// prepared file. REQUIRES: not l.mu.
func (l *Log) stopPreparer() {
	if l.prepStop == nil {
		return
	}
	close(l.prepStop)
	l.prepDone.Wait()
	if l.failed.Load() == nil {
		l.sealQueued()
	}
	l.mu.Lock()
	q, p := l.sealQueue, l.prepared
	l.sealQueue, l.prepared = nil, nil
	l.mu.Unlock()
	for _, s := range q {
		_ = s.release()
	}
	if p != nil {
		l.discard(p)
	}
}
