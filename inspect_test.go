package spillway

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dirHash is a digest of every file's name and bytes under dir.
func dirHash(t testing.TB, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// TestInspectPersistent: a Persistent ManualAck queue's directory, read
// while the queue is open and after it closed, says what it holds: the
// manifest's settings, every message in the shards' logs, how far
// receivers got, how many deliveries are not settled; and InspectDir
// changes no byte.
func TestInspectPersistent(t *testing.T) {
	dir := t.TempDir()
	opts := persistentOptions(dir)
	opts.Ack, opts.Sync = ManualAck, SyncInterval
	q := openPersistent(t, opts)
	ctx := context.Background()
	const sent, received, acked = 400, 150, 100
	for i := range sent {
		if err := q.Send(ctx, keyedMessage(i%7, i)); err != nil {
			t.Fatal(err)
		}
	}
	ds := receiveN(t, q, received)
	for i := range acked {
		if err := ds[i].Ack(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		before := dirHash(t, dir)
		rep, err := InspectDir(dir, InspectOptions{Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if dirHash(t, dir) != before {
			t.Fatalf("%s: InspectDir changed the directory", what)
		}
		if !rep.Clean() || !rep.Manifest || rep.Kind != "queue" || rep.Durability != Persistent || rep.Sync != SyncInterval || rep.Shards != 4 || rep.Compression != opts.Compression {
			t.Fatalf("%s: report %+v", what, rep)
		}
		if len(rep.Logs) != 4 || len(rep.Others) != 0 {
			t.Fatalf("%s: logs %+v, others %v", what, rep.Logs, rep.Others)
		}
		var records, cursors uint64
		for i, l := range rep.Logs {
			if l.Name != shardDirName(i) || l.Shard != i || l.Spill {
				t.Fatalf("%s: log %d: %+v", what, i, l)
			}
			for _, s := range l.Log.Segments {
				records += s.Records
			}
			cursors += l.Cursor
		}
		if records != sent {
			t.Fatalf("%s: %d records in the logs, %d sent", what, records, sent)
		}
		if cursors != received {
			t.Fatalf("%s: the cursors add up to %d, %d received", what, cursors, received)
		}
		t.Logf("%s: %+v", what, rep.Logs[0])
	}
	check("open")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
	rep, err := InspectDir(dir, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unsettled := 0
	for _, l := range rep.Logs {
		unsettled += l.Unsettled
	}
	if unsettled != received-acked {
		t.Fatalf("%d unsettled in the journals, want %d", unsettled, received-acked)
	}
}

// TestInspectEphemeralSpill: an Ephemeral queue's directory while it
// spills holds spill logs, reported as such.
func TestInspectEphemeralSpill(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, Shards: 2, RingSize: 4})
	ctx := context.Background()
	for i := range 100 {
		if err := q.Send(ctx, msg(0, i, i%5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	rep, err := InspectDir(dir, InspectOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	var records uint64
	for _, l := range rep.Logs {
		if !l.Spill || !strings.HasPrefix(l.Name, spillDirPrefix) {
			t.Fatalf("log %+v", l)
		}
		for _, s := range l.Log.Segments {
			records += s.Records
		}
	}
	if st := q.Stats(); records != st.Spilled || rep.Durability != Ephemeral || rep.Kind != "queue" {
		t.Fatalf("%d records in spills, %d spilled; report %+v", records, st.Spilled, rep)
	}
}

// TestInspectDamage: a flipped byte in a Persistent shard's log, a torn
// cursor header and a damaged manifest each show in the report (not as an
// error of InspectDir), which is then not Clean.
func TestInspectDamage(t *testing.T) {
	dir := t.TempDir()
	q := openPersistent(t, persistentOptions(dir))
	ctx := context.Background()
	for i := range 200 {
		if err := q.Send(ctx, keyedMessage(i%3, i)); err != nil {
			t.Fatal(err)
		}
	}
	closeQueue(t, q)
	flip := func(path string, at int) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[at] ^= 0x10
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := InspectDir(dir, InspectOptions{Verify: true})
	if err != nil || !rep.Clean() {
		t.Fatalf("before the damage: %v, %+v", err, rep)
	}
	shard := filepath.Join(dir, shardDirName(rep.Logs[0].Shard))
	seg := filepath.Join(shard, rep.Logs[0].Log.Segments[0].Name)
	flip(seg, 64+40) // the first batch's payload
	flip(filepath.Join(shard, cursorName), 2)
	flip(filepath.Join(dir, manifestName), len("spillway-manifest\n")+3)
	rep, err = InspectDir(dir, InspectOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() || !errors.Is(rep.ManifestErr, ErrStorage) || rep.Manifest {
		t.Fatalf("manifest: %v (read %v)", rep.ManifestErr, rep.Manifest)
	}
	l := rep.Logs[0]
	if !errors.Is(l.StateErr, ErrStorage) || l.Log.Clean() {
		t.Fatalf("shard 0: state %v, problems %v", l.StateErr, l.Log.Problems())
	}
}

// TestInspectPersistentTopic: a Persistent ManualAck topic's directory
// reports its shards' logs and each subscription: its start, its cursor in
// each shard, its unsettled deliveries; an unfinished subscription shows
// as incomplete; InspectDir changes no byte.
func TestInspectPersistentTopic(t *testing.T) {
	dir := t.TempDir()
	tp := openPersistentTopic(t, dir, Options{Ack: ManualAck, AckTimeout: time.Hour})
	audit, err := tp.Subscribe("audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.SubscribeAt("replay", Earliest()); err != nil {
		t.Fatal(err)
	}
	publishN(t, tp, 0, 300)
	const received, kept = 100, 34
	for i := range received {
		d, err := audit.Receive(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i >= kept {
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	// A creation that did not finish: cursors, no marker.
	if err := os.MkdirAll(filepath.Join(dir, subDirName("half"), shardDirName(0)), 0o700); err != nil {
		t.Fatal(err)
	}
	before := dirHash(t, dir)
	rep, err := InspectDir(dir, InspectOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if dirHash(t, dir) != before {
		t.Fatal("InspectDir changed the directory")
	}
	if !rep.Clean() || rep.Kind != "topic" || len(rep.Logs) != 2 || len(rep.Others) != 0 || len(rep.Subscriptions) != 3 {
		t.Fatalf("report %+v", rep)
	}
	var records uint64
	for _, l := range rep.Logs {
		for _, s := range l.Log.Segments {
			records += s.Records
		}
	}
	if records != 300 {
		t.Fatalf("%d records in the logs, 300 published", records)
	}
	sum := func(s SubscriptionReport) (cursors uint64, unsettled int) {
		for _, st := range s.Shards {
			cursors += st.Cursor
			unsettled += st.Unsettled
		}
		return cursors, unsettled
	}
	a, half, replay := rep.Subscriptions[0], rep.Subscriptions[1], rep.Subscriptions[2]
	if c, u := sum(a); a.Name != "audit" || a.Start != "latest" || !a.Complete || c != received || u != kept {
		t.Fatalf("audit: cursors %d, %d unsettled: %+v", c, u, a)
	}
	if half.Name != "half" || half.Complete {
		t.Fatalf("half: %+v", half)
	}
	if c, u := sum(replay); replay.Start != "earliest" || c != 0 || u != 0 {
		t.Fatalf("replay: %+v", replay)
	}
}
