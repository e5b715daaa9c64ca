package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/mmap"
)

// dirView is what inspect and verify show of a directory: a Queue's or
// Topic's (Kind queue or topic), or a bare log of package mmap (Kind log).
type dirView struct {
	Dir           string    `json:"dir"`
	Kind          string    `json:"kind"`
	Durability    string    `json:"durability,omitempty"`
	Sync          string    `json:"sync,omitempty"`
	Compression   string    `json:"compression,omitempty"`
	Shards        int       `json:"shards,omitempty"`
	Priorities    int       `json:"priorities,omitempty"` // levels, each with Shards shards; absent: 1
	Format        int       `json:"format,omitempty"`
	ManifestError string    `json:"manifest_error,omitempty"`
	Logs          []logView `json:"logs"`
	Subscriptions []subView `json:"subscriptions,omitempty"` // a Persistent topic's
	Others        []string  `json:"others,omitempty"`        // entries Spillway does not know
	// Encryption: every batch sealed; the key ids the batches use now;
	// the key ids the manifest knows.
	Sealed         bool     `json:"sealed,omitempty"`
	KeyIDs         []uint32 `json:"key_ids,omitempty"`
	ManifestKeyIDs []uint32 `json:"manifest_key_ids,omitempty"`

	rep *spillway.DirReport // for each log's scan options (dump); nil for a bare log
}

// scanOptions returns how to scan the log named name.
func (v *dirView) scanOptions(name string) mmap.ScanOptions {
	if v.rep == nil {
		return mmap.ScanOptions{}
	}
	return v.rep.ScanOptions(name)
}

// subView is one subscription of a Persistent topic.
type subView struct {
	Name     string   `json:"name"`
	Start    string   `json:"start,omitempty"` // the StartAt it was created with
	Complete bool     `json:"complete"`        // false: its creation did not finish; the next open removes it
	Cursors  []uint64 `json:"cursors"`         // per shard: the first offset never handed out
	Behind   uint64   `json:"behind"`          // messages in the logs past its cursors
	// Unsettled: delivered, not settled (ManualAck), over all shards.
	Unsettled int      `json:"unsettled,omitempty"`
	Errors    []string `json:"errors,omitempty"`
}

// logView is one log: a Persistent shard's, an Ephemeral spill, or a bare
// log.
type logView struct {
	Name        string    `json:"name"`
	Path        string    `json:"path"`
	Shard       int       `json:"shard"`
	Spill       bool      `json:"spill,omitempty"` // Ephemeral: the next open removes it
	Segments    []segView `json:"segments"`
	Batches     int       `json:"batches"`
	Records     uint64    `json:"records"`
	FirstOffset uint64    `json:"first_offset"`
	NextOffset  uint64    `json:"next_offset"`
	DataBytes   int64     `json:"data_bytes"`       // bytes of the batches
	RawBytes    int64     `json:"raw_bytes"`        // their records before compression
	DiskBytes   int64     `json:"disk_bytes"`       // the segment files' lengths
	Oldest      string    `json:"oldest,omitempty"` // first record's timestamp (see TimesFrom)
	Newest      string    `json:"newest,omitempty"` // last record's timestamp (see TimesFrom)
	// TimesFrom says where Oldest and Newest come from: "records" (the
	// first and last timed records: a Queue times 1 in LatencySampling),
	// or "segments" when records carry none: the first segment's creation
	// and the last append to the last.
	TimesFrom   string   `json:"times_from,omitempty"`
	Quarantined []string `json:"quarantined,omitempty"` // bytes a recovery moved aside
	Others      []string `json:"others,omitempty"`
	Problems    []string `json:"problems,omitempty"`
	// A Persistent shard's state.
	Cursor     *uint64 `json:"cursor,omitempty"` // the first offset never handed to a receiver
	Generation uint64  `json:"journal_generation,omitempty"`
	Unsettled  int     `json:"unsettled,omitempty"` // delivered, not settled (ManualAck)
	StateError string  `json:"state_error,omitempty"`
}

// segView is one segment file.
type segView struct {
	Name      string         `json:"name"`
	Version   int            `json:"version"` // of the segment header
	Base      uint64         `json:"base"`
	Next      uint64         `json:"next"`
	Sealed    bool           `json:"sealed"`
	Batches   int            `json:"batches"`
	Records   uint64         `json:"records"`
	DataBytes int64          `json:"data_bytes"`
	RawBytes  int64          `json:"raw_bytes"`
	Size      int64          `json:"size"`
	Reserved  int64          `json:"reserved"`
	Codecs    map[string]int `json:"codecs,omitempty"`
	Problems  []string       `json:"problems,omitempty"`
}

// clean reports whether nothing in v is damaged.
func (v *dirView) clean() bool {
	if v.ManifestError != "" {
		return false
	}
	for _, l := range v.Logs {
		if len(l.Problems) > 0 || l.StateError != "" {
			return false
		}
	}
	for _, s := range v.Subscriptions {
		if len(s.Errors) > 0 {
			return false
		}
	}
	return true
}

// readDirView reads dir, read only: InspectDir for a Queue's or Topic's
// directory, mmap.Scan for a bare log.
func readDirView(dir string, verify bool, keys *spillway.Encryption) (*dirView, error) {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist (give the Dir a Queue or Topic was opened with, or a log's directory)", dir)
		}
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a directory (give the Dir a Queue or Topic was opened with)", dir)
	}
	isLog, err := isBareLog(dir)
	if err != nil {
		return nil, err
	}
	if isLog {
		rep, err := mmap.Scan(dir, mmap.ScanOptions{Verify: verify}, nil)
		if err != nil {
			return nil, err
		}
		return &dirView{Dir: dir, Kind: "log", Logs: []logView{logOf(filepath.Base(dir), dir, 0, false, rep)}}, nil
	}
	rep, err := spillway.InspectDir(dir, spillway.InspectOptions{Verify: verify, Encryption: keys})
	if err != nil {
		return nil, err
	}
	if !rep.Manifest && rep.ManifestErr == nil && len(rep.Logs) == 0 {
		return nil, fmt.Errorf("%s holds neither a Queue's or Topic's files nor a log's segments", dir)
	}
	v := &dirView{Dir: dir, Kind: rep.Kind, Shards: rep.Shards, Format: rep.Format, Others: rep.Others,
		Sealed: rep.Sealed, KeyIDs: rep.KeyIDs, ManifestKeyIDs: rep.ManifestKeyIDs, rep: rep}
	if rep.Priorities > 1 {
		v.Priorities = rep.Priorities
	}
	if rep.Manifest {
		v.Durability, v.Compression = rep.Durability.String(), rep.Compression.String()
		if rep.Durability == spillway.Persistent {
			v.Sync = rep.Sync.String()
		}
	}
	if rep.ManifestErr != nil {
		v.ManifestError = rep.ManifestErr.Error()
	}
	next := map[int]uint64{}
	for _, l := range rep.Logs {
		if segs := l.Log.Segments; !l.Spill && len(segs) > 0 {
			next[l.Shard] = segs[len(segs)-1].Next
		}
	}
	for _, s := range rep.Subscriptions {
		sv := subView{Name: s.Name, Start: s.Start, Complete: s.Complete}
		if s.Err != nil {
			sv.Errors = append(sv.Errors, s.Err.Error())
		}
		for i, st := range s.Shards {
			sv.Cursors = append(sv.Cursors, st.Cursor)
			if n := next[i]; n > st.Cursor {
				sv.Behind += n - st.Cursor
			}
			sv.Unsettled += st.Unsettled
			if st.StateErr != nil {
				sv.Errors = append(sv.Errors, fmt.Sprintf("shard %d: %v", i, st.StateErr))
			}
		}
		v.Subscriptions = append(v.Subscriptions, sv)
	}
	for _, l := range rep.Logs {
		lv := logOf(l.Name, filepath.Join(dir, l.Name), l.Shard, l.Spill, l.Log)
		if !l.Spill && rep.Kind != "topic" {
			c := l.Cursor
			lv.Cursor, lv.Generation, lv.Unsettled = &c, l.Generation, l.Unsettled
		}
		if l.StateErr != nil {
			lv.StateError = l.StateErr.Error()
		}
		v.Logs = append(v.Logs, lv)
	}
	return v, nil
}

// isBareLog reports whether dir holds segment files itself.
func isBareLog(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".seg") {
			return true, nil
		}
	}
	return false, nil
}

func logOf(name, path string, shard int, spill bool, rep *mmap.LogReport) logView {
	lv := logView{Name: name, Path: path, Shard: shard, Spill: spill, Quarantined: rep.Sidecars, Others: rep.Others}
	var first, last int64
	var created, appended time.Time // of the segments, when records carry no time
	for i, s := range rep.Segments {
		sv := segView{Name: s.Name, Version: s.Version, Base: s.Base, Next: s.Next, Sealed: s.Sealed, Batches: s.Batches, Records: s.Records,
			DataBytes: s.DataBytes, RawBytes: s.RawBytes, Size: s.Size, Reserved: s.Reserved, Codecs: map[string]int{}}
		for c, n := range s.Codecs {
			sv.Codecs[c.String()] = n
		}
		for _, p := range s.Problems {
			sv.Problems = append(sv.Problems, p.String())
			lv.Problems = append(lv.Problems, p.String())
		}
		lv.Segments = append(lv.Segments, sv)
		lv.Batches += s.Batches
		lv.Records += s.Records
		lv.DataBytes += s.DataBytes
		lv.RawBytes += s.RawBytes
		lv.DiskBytes += s.Size
		if i == 0 {
			lv.FirstOffset = s.Base
		}
		lv.NextOffset = s.Next
		if first == 0 {
			first = s.FirstTime
		}
		if s.LastTime != 0 {
			last = s.LastTime
		}
		if s.Batches > 0 {
			if created.IsZero() {
				created = s.Created
			}
			appended = s.LastAppend
			if !s.Sealed {
				if st, err := os.Stat(filepath.Join(path, s.Name)); err == nil {
					appended = st.ModTime() // the active segment: its file's last write
				}
			}
		}
	}
	for _, g := range rep.Gaps {
		lv.Problems = append(lv.Problems, g.String())
	}
	switch {
	case first != 0 && last != 0:
		lv.Oldest, lv.Newest, lv.TimesFrom = timestamp(first), timestamp(last), "records"
	case !created.IsZero():
		lv.Oldest, lv.TimesFrom = timestamp(created.UnixNano()), "segments"
		if !appended.IsZero() {
			lv.Newest = timestamp(appended.UnixNano())
		}
	}
	return lv
}

// timestamp formats unix ns, or "" for 0 (none recorded).
func timestamp(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}
