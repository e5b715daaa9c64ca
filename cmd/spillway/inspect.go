package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

func runInspect(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print the report as JSON")
	segments := fs.Bool("segments", false, "list every segment file")
	keyPath := keyFile(fs)
	args, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	keys, err := loadKeys(*keyPath)
	if err != nil {
		return err
	}
	v, err := readDirView(args[0], false, keys)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeViewJSON(stdout, v)
	}
	return writeView(stdout, v, *segments)
}

func writeViewJSON(w io.Writer, v *dirView) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeView prints v for a person: the directory's settings, a line per
// log, and with segments a line per segment file.
func writeView(w io.Writer, v *dirView, segments bool) error {
	head := fmt.Sprintf("%s: %s", v.Dir, v.Kind)
	switch {
	case v.Kind == "log":
		head += " (package mmap's segment files)"
	case v.ManifestError != "":
		head += "; its manifest cannot be read: " + v.ManifestError
	case v.Kind == "":
		head += "(no manifest)"
	default:
		head += ", " + v.Durability
		if v.Sync != "" {
			head += ", sync " + v.Sync
		}
		head += fmt.Sprintf(", %s, %d shards", v.Compression, v.Shards)
		if v.Priorities > 1 {
			head += fmt.Sprintf(" × %d priority levels", v.Priorities)
		}
		head += fmt.Sprintf(" (manifest format %d)", v.Format)
		if len(v.ManifestKeyIDs) > 0 {
			head += fmt.Sprintf("\nencrypted: batches sealed with key ids %v (the manifest knows %v)", orNone(v.KeyIDs), v.ManifestKeyIDs)
		}
	}
	if _, err := fmt.Fprintln(w, head); err != nil {
		return err
	}
	if len(v.Logs) == 0 {
		if _, err := fmt.Fprintln(w, "no logs: nothing is stored (an Ephemeral queue or topic spills only while memory is full)"); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := printer{w: tw}
	p.printf("log\tsegments\tbatches\trecords\toffsets\ton disk\tstored/raw\toldest\tnewest\tstate\t\n")
	for _, l := range v.Logs {
		ratio := "-"
		if l.RawBytes > 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*float64(l.DataBytes)/float64(l.RawBytes))
		}
		p.printf("%s\t%d\t%d\t%d\t[%d, %d)\t%s\t%s\t%s\t%s\t%s\t\n", l.Name, len(l.Segments), l.Batches, l.Records,
			l.FirstOffset, l.NextOffset, bytesOf(l.DiskBytes), ratio, orDash(l.Oldest), orDash(l.Newest), state(l))
	}
	if err := errors.Join(p.err, tw.Flush()); err != nil {
		return err
	}
	if segments {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		p := printer{w: tw}
		p.printf("\nlog\tsegment\tversion\tsealed\tbatches\trecords\toffsets\tdata\treserved\tcodecs\t\n")
		for _, l := range v.Logs {
			for _, s := range l.Segments {
				p.printf("%s\t%s\t%d\t%v\t%d\t%d\t[%d, %d)\t%s\t%s\t%v\t\n", l.Name, s.Name, s.Version, s.Sealed, s.Batches, s.Records,
					s.Base, s.Next, bytesOf(s.DataBytes), bytesOf(s.Reserved), codecs(s.Codecs))
			}
		}
		if err := errors.Join(p.err, tw.Flush()); err != nil {
			return err
		}
	}
	for _, l := range v.Logs {
		for _, q := range l.Quarantined {
			if _, err := fmt.Fprintf(w, "%s: quarantined by a recovery: %s\n", l.Name, q); err != nil {
				return err
			}
		}
		for _, p := range l.Problems {
			if _, err := fmt.Fprintf(w, "%s: problem: %s\n", l.Name, p); err != nil {
				return err
			}
		}
		if l.StateError != "" {
			if _, err := fmt.Fprintf(w, "%s: state: %s\n", l.Name, l.StateError); err != nil {
				return err
			}
		}
	}
	if len(v.Subscriptions) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		p := printer{w: tw}
		p.printf("\nsubscription\tstart\tcursors\tbehind\tunsettled\t\n")
		for _, s := range v.Subscriptions {
			start := s.Start
			if !s.Complete {
				start = "incomplete (removed at the next open)"
			}
			p.printf("%s\t%s\t%v\t%d\t%d\t\n", s.Name, start, s.Cursors, s.Behind, s.Unsettled)
		}
		if err := errors.Join(p.err, tw.Flush()); err != nil {
			return err
		}
		for _, s := range v.Subscriptions {
			for _, e := range s.Errors {
				if _, err := fmt.Fprintf(w, "subscription %s: %s\n", s.Name, e); err != nil {
					return err
				}
			}
		}
	}
	for _, o := range v.Others {
		if _, err := fmt.Fprintf(w, "not Spillway's: %s\n", o); err != nil {
			return err
		}
	}
	return nil
}

// state says what a log is for: an Ephemeral spill, or a Persistent
// shard's cursor and unsettled deliveries.
func state(l logView) string {
	switch {
	case l.Spill:
		return "spill (removed at the next open)"
	case l.Cursor == nil:
		return "-"
	}
	s := fmt.Sprintf("cursor %d", *l.Cursor)
	if l.Unsettled > 0 {
		s += fmt.Sprintf(", %d unsettled", l.Unsettled)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bytesOf writes n in B, KiB, MiB or GiB.
func bytesOf(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// codecs writes batches per compression, as "zstd 12, none 3".
func codecs(m map[string]int) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", name, m[name]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func orNone(ids []uint32) any {
	if len(ids) == 0 {
		return "none"
	}
	return ids
}
