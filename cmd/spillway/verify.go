package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/mmap"
)

func runVerify(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	repair := fs.Bool("repair", false, "first do what opening does: cut torn tails, move corrupt batches aside (only on a directory no process has open)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	keyPath := keyFile(fs)
	args, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	dir := args[0]
	if *repair {
		if err := repairDir(dir, stdout); err != nil {
			return err
		}
	}
	keys, err := loadKeys(*keyPath)
	if err != nil {
		return err
	}
	v, err := readDirView(dir, true, keys)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeViewJSON(stdout, v); err != nil {
			return err
		}
	} else if err := writeVerdict(stdout, v); err != nil {
		return err
	}
	if !v.clean() {
		return errProblems
	}
	return nil
}

// writeVerdict prints one line per log, ok or what is wrong, and a last
// line that sums up.
func writeVerdict(w io.Writer, v *dirView) error {
	bad := 0
	if v.ManifestError != "" {
		bad++
		if _, err := fmt.Fprintf(w, "MANIFEST: %s\n", v.ManifestError); err != nil {
			return err
		}
	}
	for _, l := range v.Logs {
		if len(l.Problems) == 0 && l.StateError == "" {
			if _, err := fmt.Fprintf(w, "%s: ok: %d segments, %d batches, %d records checked\n", l.Name, len(l.Segments), l.Batches, l.Records); err != nil {
				return err
			}
			continue
		}
		bad++
		for _, p := range l.Problems {
			if _, err := fmt.Fprintf(w, "%s: %s\n", l.Name, p); err != nil {
				return err
			}
		}
		if l.StateError != "" {
			if _, err := fmt.Fprintf(w, "%s: state: %s\n", l.Name, l.StateError); err != nil {
				return err
			}
		}
	}
	verdict := fmt.Sprintf("%s: clean", v.Dir)
	if bad > 0 {
		verdict = fmt.Sprintf("%s: %d of %d files or logs damaged; opening the directory (or spillway verify -repair) moves the bad bytes aside, and readers skip a bad batch in a sealed segment, counting it", v.Dir, bad, len(v.Logs)+1)
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// repairDir does what opening dir does to what a crash or bad media left:
// a bare log is opened with mmap.Open, a Persistent queue's directory with
// OpenQueue (its settings from its manifest), then closed. Either takes
// the directory's lock: a directory another process holds is refused.
// Ephemeral directories hold nothing to repair.
func repairDir(dir string, stdout io.Writer) error {
	isLog, err := isBareLog(dir)
	if err != nil {
		return err
	}
	if isLog {
		l, rec, err := mmap.Open(dir, mmap.Options{})
		if errors.Is(err, mmap.ErrLocked) {
			return fmt.Errorf("%s is open in another process: stop it, then repair", dir)
		}
		if err != nil {
			return err
		}
		if err := l.Close(); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "repaired %s: %d segments kept, %d removed, %d runs of bad bytes moved aside (%d records lost)\n",
			dir, rec.Segments, len(rec.Removed), len(rec.Dropped), rec.LostRecords())
		return err
	}
	rep, err := spillway.InspectDir(dir, spillway.InspectOptions{})
	if err != nil {
		return err
	}
	switch {
	case rep.ManifestErr != nil:
		return fmt.Errorf("%s's manifest cannot be read, so how to open it is unknown: %v", dir, rep.ManifestErr)
	case !rep.Manifest:
		return fmt.Errorf("%s has no manifest: not a Queue's or Topic's directory", dir)
	case rep.Durability != spillway.Persistent || rep.Kind != "queue":
		return fmt.Errorf("nothing to repair in %s: an Ephemeral %s keeps no message across a restart, and its next open removes its spills", dir, rep.Kind)
	}
	opts := spillway.Options{Dir: dir, Durability: spillway.Persistent, Sync: rep.Sync, Compression: rep.Compression, Shards: rep.Shards}
	for _, l := range rep.Logs {
		if l.ManualAck {
			opts.Ack = spillway.ManualAck // as it was: its journal's unsettled deliveries stay so
		}
	}
	q, err := spillway.OpenQueue(opts)
	if errors.Is(err, spillway.ErrInvalidOptions) {
		return fmt.Errorf("cannot open %s to repair it (is it open in another process? stop it first): %w", dir, err)
	}
	if err != nil {
		return err
	}
	rec := q.Recovery()
	if err := q.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "repaired %s: %+v\n", dir, rec)
	return err
}
