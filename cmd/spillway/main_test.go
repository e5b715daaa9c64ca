package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/spillway-io/spillway/internal/loadgen"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// spillwayCmd runs the command in process and returns its exit status and
// output.
func spillwayCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// dirHash is a digest of every file's name and bytes under dir.
func dirHash(t *testing.T, dir string) [32]byte {
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

// TestBench: a short bench of every workload prints JSON with both sides
// of each, on the same number of messages, and a PNG chart.
// bench -latency: every pipe at every rate, each with its percentiles in
// order, the memory path never through the disk, the spill path through
// it at least once.
func TestBenchLatency(t *testing.T) {
	code, out, errOut := spillwayCmd(t, "bench", "-latency", "-duration", "150ms", "-json", "-quiet")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Results []latencyRow `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Results) != len(loadgen.Rates)*len(latencyPipes) {
		t.Fatalf("%d rows, want %d:\n%s", len(rep.Results), len(loadgen.Rates)*len(latencyPipes), out)
	}
	spilled := false
	for _, r := range rep.Results {
		if r.Behind && r.Recorded == 0 {
			continue // so far behind (under -race) that it sent nothing meant for after the warm-up
		}
		if r.Recorded == 0 || r.Achieved <= 0 || r.P50Ns <= 0 || r.P99Ns < r.P50Ns || r.P999Ns < r.P99Ns || r.P9999Ns < r.P999Ns || r.MaxNs < r.P9999Ns {
			t.Fatalf("row %+v", r)
		}
		if r.Impl == "spillway" && r.ViaDiskPct != 0 {
			t.Fatalf("the memory path went through the disk: %+v", r)
		}
		spilled = spilled || r.Impl == "spillway spill" && r.ViaDiskPct > 0
	}
	if !spilled {
		t.Fatalf("the spill path never spilled:\n%s", out)
	}
}

func TestBench(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "bench.png")
	code, out, errOut := spillwayCmd(t, "bench", "-count", "20000", "-batch", "16", "-json", "-quiet", "-plot", plot)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Results) != 2*len(workloads) || rep.Count != 20000 || rep.Batch != 16 || rep.Machine.GOMAXPROCS == 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Results {
		if r.Messages != 20000 || r.MsgsPerSec <= 0 || r.NsPerMsg <= 0 {
			t.Fatalf("result %+v", r)
		}
		if r.Impl == "spillway" && r.VsChan <= 0 {
			t.Fatalf("no ratio: %+v", r)
		}
		if r.Timed == 0 || r.P50Ns <= 0 || r.P99Ns < r.P50Ns {
			t.Fatalf("latency of %s/%s: %d timed, p50 %v p99 %v", r.Workload, r.Impl, r.Timed, r.P50Ns, r.P99Ns)
		}
		if r.Workload == "spill" && r.Impl == "spillway" && r.Spilled == 0 {
			t.Fatalf("the spill workload spilled nothing: %+v", r)
		}
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the plot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Fatalf("plot of %v", b)
	}
	// The table, for a person, with one workload and a duration.
	code, out, errOut = spillwayCmd(t, "bench", "-workload", "queue", "-duration", "50ms", "-quiet")
	if code != exitOK || !strings.Contains(out, "vs chan") || !strings.Contains(out, "queue") {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
}

// persistentDir writes a Persistent ManualAck queue's directory: n
// messages, keyed, with a header, every third value not UTF-8; of them,
// received are received, and the first half of those acked.
func persistentDir(t *testing.T, n, received int) (string, []spillway.Message) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "queue")
	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 2, Ack: spillway.ManualAck})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var sent []spillway.Message
	for i := range n {
		v := []byte("value " + string(rune('a'+i%26)))
		if i%3 == 0 {
			v = []byte{0xff, 0xfe, byte(i)}
		}
		m := spillway.Message{Key: []byte{'k', byte('0' + i%2)}, Value: v, Headers: []spillway.Header{{Key: "n", Value: []byte{byte('0' + i%10)}}}}
		sent = append(sent, m)
		if err := q.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range received {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i < received/2 {
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, sent
}

// TestInspectVerifyDump: on a directory the library wrote, inspect and
// verify say what it holds, dump prints every record (UTF-8 or base64),
// and none of them changes a byte.
func TestInspectVerifyDump(t *testing.T) {
	const n, received = 300, 40
	dir, sent := persistentDir(t, n, received)
	before := dirHash(t, dir)

	code, out, errOut := spillwayCmd(t, "inspect", dir)
	if code != exitOK || !strings.Contains(out, "queue, persistent") || !strings.Contains(out, "shard-0000") || !strings.Contains(out, "shard-0001") {
		t.Fatalf("inspect: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = spillwayCmd(t, "inspect", "-json", "-segments", dir)
	if code != exitOK {
		t.Fatalf("inspect -json: exit %d: %s", code, errOut)
	}
	var v dirView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	var records uint64
	var cursors uint64
	unsettled := 0
	for _, l := range v.Logs {
		records += l.Records
		cursors += *l.Cursor
		unsettled += l.Unsettled
	}
	if records != n || cursors != received || unsettled != received-received/2 || v.Shards != 2 {
		t.Fatalf("inspect: %d records, cursors %d, %d unsettled; %+v", records, cursors, unsettled, v)
	}

	for _, l := range v.Logs {
		if l.Oldest == "" || l.Newest == "" || l.Segments[0].Version != 2 {
			t.Fatalf("inspect: log %s: oldest %q, newest %q, segment %+v", l.Name, l.Oldest, l.Newest, l.Segments[0])
		}
	}

	code, out, errOut = spillwayCmd(t, "verify", dir)
	if code != exitOK || !strings.Contains(out, "clean") {
		t.Fatalf("verify: exit %d:\n%s%s", code, out, errOut)
	}

	code, out, errOut = spillwayCmd(t, "dump", dir)
	if code != exitOK {
		t.Fatalf("dump: exit %d: %s", code, errOut)
	}
	recs := parseDump(t, out)
	if len(recs) != n {
		t.Fatalf("dump printed %d records, %d sent", len(recs), n)
	}
	// Every sent message is there once, value and header intact.
	want := map[string]int{}
	for _, m := range sent {
		want[string(m.Value)+"|"+string(m.Headers[0].Value)]++
	}
	delivered := 0
	for _, r := range recs {
		var value []byte
		switch {
		case r.Value != nil:
			value = []byte(*r.Value)
		case r.ValueB64 != nil:
			b, err := base64.StdEncoding.DecodeString(*r.ValueB64)
			if err != nil {
				t.Fatal(err)
			}
			value = b
		}
		want[string(value)+"|"+*r.Headers[0].Value]--
		if r.Delivered != nil && *r.Delivered {
			delivered++
		}
	}
	for k, c := range want {
		if c != 0 {
			t.Fatalf("message %q: %d more sent than dumped", k, c)
		}
	}
	if delivered != received {
		t.Fatalf("%d records marked delivered, %d received", delivered, received)
	}
	// One shard, from an offset, a few.
	code, out, _ = spillwayCmd(t, "dump", "-shard", "1", "-from", "10", "-limit", "5", dir)
	recs = parseDump(t, out)
	if code != exitOK || len(recs) != 5 || recs[0].Shard != 1 || recs[0].Offset != 10 || recs[4].Offset != 14 {
		t.Fatalf("dump -shard 1 -from 10 -limit 5: exit %d: %+v", code, recs)
	}
	if dirHash(t, dir) != before {
		t.Fatal("inspect, verify or dump changed the directory")
	}

	// While a queue holds the directory open: inspect and dump read it
	// all the same, and change nothing.
	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, Durability: spillway.Persistent, Ack: spillway.ManualAck})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	}()
	before = dirHash(t, dir)
	if code, out, errOut := spillwayCmd(t, "inspect", dir); code != exitOK || !strings.Contains(out, "shard-0001") {
		t.Fatalf("inspect of an open directory: exit %d:\n%s%s", code, out, errOut)
	}
	if code, out, _ := spillwayCmd(t, "dump", dir); code != exitOK || len(parseDump(t, out)) != n {
		t.Fatalf("dump of an open directory: exit %d", code)
	}
	if dirHash(t, dir) != before {
		t.Fatal("inspect or dump changed a directory in use")
	}
}

func parseDump(t *testing.T, out string) []dumpRecord {
	t.Helper()
	var recs []dumpRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r dumpRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestVerifyCorrupt: a flipped byte in a shard's log makes verify exit 1
// naming the file; -repair moves the bad batch aside (it is in the active
// segment, which opening scans) and verify then passes; and -repair
// refuses a directory a queue holds open.
func TestVerifyCorrupt(t *testing.T) {
	dir, _ := persistentDir(t, 200, 0)
	shard := filepath.Join(dir, "shard-0000")
	segs, err := filepath.Glob(filepath.Join(shard, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[64+codec.HeaderSize+2] ^= 0x20 // the first batch's payload
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirHash(t, dir)
	code, out, errOut := spillwayCmd(t, "verify", dir)
	if code != exitProblems || !strings.Contains(out, filepath.Base(seg)) || !strings.Contains(out, "checksum") {
		t.Fatalf("verify of a corrupt copy: exit %d:\n%s%s", code, out, errOut)
	}
	if dirHash(t, dir) != before {
		t.Fatal("verify changed the directory")
	}

	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, Durability: spillway.Persistent, Ack: spillway.ManualAck})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = spillwayCmd(t, "verify", "-repair", dir)
	if code != exitFailure || !strings.Contains(errOut, "another process") {
		t.Fatalf("verify -repair of an open directory: exit %d: %s", code, errOut)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Opening it repaired it already; corrupt it again for -repair.
	b, err = os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[64+codec.HeaderSize+2] ^= 0x20
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = spillwayCmd(t, "verify", "-repair", dir)
	if code != exitOK || !strings.Contains(out, "repaired") || !strings.Contains(out, "clean") {
		t.Fatalf("verify -repair: exit %d:\n%s%s", code, out, errOut)
	}
}

// TestBareLog: inspect and dump read a log of package mmap as well.
func TestBareLog(t *testing.T) {
	dir := t.TempDir()
	l, _, err := mmap.Open(dir, mmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := l.Append([]codec.Record{{Value: []byte{'v', byte('0' + i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := spillwayCmd(t, "inspect", dir)
	if code != exitOK || !strings.Contains(out, ": log") {
		t.Fatalf("inspect: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, _ = spillwayCmd(t, "dump", "-from", "8", dir)
	if recs := parseDump(t, out); code != exitOK || len(recs) != 2 || *recs[1].Value != "v9" {
		t.Fatalf("dump: exit %d: %+v", code, recs)
	}
}

// TestUsage: help exits 0 with an example; mistakes exit 2 with one line
// that says what to do.
func TestUsage(t *testing.T) {
	for _, c := range commands {
		code, _, errOut := spillwayCmd(t, c.name, "-h")
		if code != exitOK || !strings.Contains(errOut, "example:") || !strings.Contains(errOut, "usage: spillway "+c.name) {
			t.Fatalf("%s -h: exit %d:\n%s", c.name, code, errOut)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "no command"},
		{[]string{"inspect"}, "want 1 argument"},
		{[]string{"inspect", "/nonexistent/spillway"}, "does not exist"},
		{[]string{"dump", "-limit", "-1", "."}, "must not be negative"},
		{[]string{"bench", "-workload", "nope"}, "no workload"},
		{[]string{"bench", "-batch", "0"}, "must be positive"},
		{[]string{"verify", "-nope", "."}, "flag provided but not defined"},
	} {
		code, _, errOut := spillwayCmd(t, tc.args...)
		if code != exitFailure || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
	}
	if code, _, _ := spillwayCmd(t); code != exitFailure {
		t.Fatalf("no command: exit %d", code)
	}
}

// TestInspectTopic: inspect shows a Persistent topic's priority levels
// and subscriptions, with their cursors and how far behind they are;
// verify finds it clean; dump prints every message once.
func TestInspectTopic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "topic")
	tp, err := spillway.OpenTopic(spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 2, Priorities: 2})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := tp.Subscribe("audit")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n, received = 200, 60
	for i := range n {
		if err := tp.Publish(ctx, spillway.Message{Key: []byte{'k', byte('0' + i%4)}, Value: []byte("v"), Priority: uint8(i % 2)}); err != nil {
			t.Fatal(err)
		}
	}
	for range received {
		if _, err := audit.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := spillwayCmd(t, "inspect", dir)
	if code != exitOK || !strings.Contains(out, "topic, persistent") || !strings.Contains(out, "2 shards × 2 priority levels") || !strings.Contains(out, "audit") {
		t.Fatalf("inspect: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = spillwayCmd(t, "inspect", "-json", dir)
	if code != exitOK {
		t.Fatalf("inspect -json: exit %d: %s", code, errOut)
	}
	var v dirView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Subscriptions) != 1 || v.Priorities != 2 || len(v.Logs) != 4 {
		t.Fatalf("inspect: %d priorities, %d logs, subscriptions %+v", v.Priorities, len(v.Logs), v.Subscriptions)
	}
	s := v.Subscriptions[0]
	var cursors uint64
	for _, c := range s.Cursors {
		cursors += c
	}
	if s.Name != "audit" || s.Start != "latest" || !s.Complete || cursors != received || s.Behind != n-received {
		t.Fatalf("inspect: subscription %+v", s)
	}
	if code, out, errOut = spillwayCmd(t, "verify", dir); code != exitOK || !strings.Contains(out, "clean") {
		t.Fatalf("verify: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = spillwayCmd(t, "dump", dir)
	if code != exitOK {
		t.Fatalf("dump: exit %d: %s", code, errOut)
	}
	if recs := parseDump(t, out); len(recs) != n {
		t.Fatalf("dump printed %d records, %d published", len(recs), n)
	}
}

// TestEncryptedDir: inspect, verify and dump read an encrypted directory
// with -key-file: inspect names the key ids in use, dump prints the
// records; without the keys dump fails saying a key is missing, and
// inspect and verify still check the batches.
func TestEncryptedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	key := bytes.Repeat([]byte{0x5a}, 32)
	enc := &spillway.Encryption{Keys: map[uint32][]byte{4: key}, Current: 4}
	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 2, Encryption: enc})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if err := q.Send(context.Background(), spillway.Message{Value: []byte(fmt.Sprintf("secret %d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keyPath, []byte(`{"current": 4, "keys": {"4": "`+hex.EncodeToString(key)+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := spillwayCmd(t, "inspect", "-key-file", keyPath, dir)
	if code != exitOK || !strings.Contains(out, "sealed with key ids [4]") {
		t.Fatalf("inspect: exit %d:\n%s%s", code, out, errOut)
	}
	if code, out, errOut = spillwayCmd(t, "verify", dir); code != exitOK || !strings.Contains(out, "clean") {
		t.Fatalf("verify without keys: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = spillwayCmd(t, "dump", "-key-file", keyPath, dir)
	if code != exitOK {
		t.Fatalf("dump: exit %d: %s", code, errOut)
	}
	if recs := parseDump(t, out); len(recs) != n || !strings.Contains(out, "secret 7") {
		t.Fatalf("dump printed %d records, %d sent:\n%s", len(recs), n, out)
	}
	if code, _, errOut = spillwayCmd(t, "dump", dir); code == exitOK || !strings.Contains(errOut, "key") {
		t.Fatalf("dump without keys: exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, hex.EncodeToString(key)) {
		t.Fatal("an error holds the key")
	}
}
