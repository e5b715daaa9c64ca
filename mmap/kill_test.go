package mmap

import (
	"bufio"
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
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(1)
		}
		fmt.Fprintf(out, "ack %d %d\n", first, n)
		out.Flush()
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
			f := strings.Fields(sc.Text())
			if f[0] != "ack" {
				t.Fatalf("child: %s", sc.Text())
			}
			first, _ := strconv.ParseUint(f[1], 10, 64)
			count, _ := strconv.ParseUint(f[2], 10, 64)
			if first != acked {
				t.Fatalf("round %d: child acknowledged offset %d, want %d", round, first, acked)
			}
			acked += count
			if n == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Wait()
		for sc.Scan() { // acknowledged before the kill landed
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "ack" {
				count, _ := strconv.ParseUint(f[2], 10, 64)
				acked += count
			}
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
		l.Close()
	}
}
