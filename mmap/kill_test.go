package mmap

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "SPILLWAY_MMAP_CHILD_DIR"

// runChild is the child process of TestKill9: it appends batches to the log
// in $SPILLWAY_MMAP_CHILD_DIR with SyncAlways forever, printing each
// acknowledged batch as "ack <first> <count>".
func runChild() {
	dir := os.Getenv(childEnv)
	l, _, err := Open(dir, Options{SegmentSize: smallSegment, Sync: SyncAlways})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	next := int(l.NextOffset())
	for i := 0; ; i++ {
		n := 1 + i%17
		first, err := l.Append(batchOf(next, n, i%300))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		// A report the parent cannot read ends the child: the parent
		// then finds fewer acks, never one that was not made.
		if _, err := fmt.Fprintf(out, "ack %d %d\n", first, n); err != nil {
			os.Exit(1)
		}
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
		next += n
	}
}

// TestKill9 runs a child that appends with SyncAlways and reports every
// acknowledged batch, kills it with SIGKILL at a random point, reopens the
// log and checks that every acknowledged record is there, in order, with
// nothing but a torn tail dropped. Several rounds on the same directory.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rng := newRand(t)
	dir := t.TempDir()
	acked := uint64(0) // records acknowledged over all rounds
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + rng.IntN(300)
		sc := bufio.NewScanner(stdout)
		for n := 0; sc.Scan(); n++ {
			first, count, ok := parseAck(sc.Text())
			if !ok {
				t.Fatalf("child: %s", sc.Text())
			}
			if first != acked {
				t.Fatalf("round %d: child acknowledged offset %d, want %d", round, first, acked)
			}
			acked += count
			if n == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		for sc.Scan() { // acknowledged before the kill landed
			if _, count, ok := parseAck(sc.Text()); ok {
				acked += count
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); !killed(err) {
			t.Fatalf("round %d: the child ended with %v, want a SIGKILL", round, err)
		}

		l, rec := open(t, dir, Options{SegmentSize: smallSegment, Sync: SyncAlways})
		for _, loss := range rec.Dropped {
			if !loss.Tail || loss.First < acked {
				t.Fatalf("round %d: recovery dropped acknowledged data: %+v (acked up to %d)", round, loss, acked)
			}
		}
		offs, vals := readAll(t, l, 0)
		if uint64(len(vals)) < acked {
			t.Fatalf("round %d: %d records recovered, %d acknowledged", round, len(vals), acked)
		}
		for i, v := range vals {
			if offs[i] != uint64(i) || valueIndex(v) != i {
				t.Fatalf("round %d: record %d has offset %d, value %q", round, i, offs[i], v)
			}
		}
		acked = uint64(len(vals)) // records past the last ack may have landed too
		closeOK(t, l)
	}
}

// parseAck reads the child's "ack first count" line.
func parseAck(line string) (first, count uint64, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ack" {
		return 0, 0, false
	}
	first, err1 := strconv.ParseUint(f[1], 10, 64)
	count, err2 := strconv.ParseUint(f[2], 10, 64)
	return first, count, err1 == nil && err2 == nil
}

// killed reports whether err is what Wait returns for a child that
// SIGKILL ended.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
