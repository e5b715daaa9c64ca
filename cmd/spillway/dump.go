package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/spillway-io/spillway/mmap"
)

// dumpRecord is one line of dump's output. Bytes that are valid UTF-8 are
// written as strings (key, value); others in base64 (key_b64, value_b64).
type dumpRecord struct {
	Log       string       `json:"log"`
	Shard     int          `json:"shard"`
	Offset    uint64       `json:"offset"`
	Timestamp string       `json:"timestamp,omitempty"` // RFC 3339, UTC; absent if none was recorded
	Delivered *bool        `json:"delivered,omitempty"` // Persistent: before the shard's cursor
	Key       *string      `json:"key,omitempty"`
	KeyB64    *string      `json:"key_b64,omitempty"`
	Headers   []dumpHeader `json:"headers,omitempty"`
	Value     *string      `json:"value,omitempty"`
	ValueB64  *string      `json:"value_b64,omitempty"`
}

type dumpHeader struct {
	Key      string  `json:"key"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
}

// errLimit ends a dump that printed -limit records.
var errLimit = errors.New("limit reached")

func runDump(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	shard := fs.Int("shard", -1, "only this shard's log (default: every log, in name order)")
	from := fs.Uint64("from", 0, "start at this offset")
	limit := fs.Int("limit", 0, "print at most this many records (0: all)")
	keyPath := keyFile(fs)
	args, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usageError{"-limit must not be negative"}
	}
	keys, err := loadKeys(*keyPath)
	if err != nil {
		return err
	}
	v, err := readDirView(args[0], false, keys)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	printed, found := 0, false
	for _, l := range v.Logs {
		if *shard >= 0 && l.Shard != *shard {
			continue
		}
		found = true
		so := v.scanOptions(l.Name)
		so.Decode, so.From = true, *from
		_, err := mmap.Scan(l.Path, so, func(b *mmap.ScannedBatch) error {
			for i, r := range b.Records {
				off := b.Header.FirstOffset + uint64(i)
				if off < *from {
					continue
				}
				if *limit > 0 && printed == *limit {
					return errLimit
				}
				d := dumpRecord{Log: l.Name, Shard: l.Shard, Offset: off, Timestamp: timestamp(r.Timestamp)}
				if l.Cursor != nil {
					delivered := off < *l.Cursor
					d.Delivered = &delivered
				}
				if r.Key != nil {
					d.Key, d.KeyB64 = text(r.Key)
				}
				d.Value, d.ValueB64 = text(r.Value)
				for _, h := range r.Headers {
					dh := dumpHeader{Key: string(h.Key)}
					dh.Value, dh.ValueB64 = text(h.Value)
					d.Headers = append(d.Headers, dh)
				}
				if err := enc.Encode(&d); err != nil {
					return err
				}
				printed++
			}
			return nil
		})
		if errors.Is(err, errLimit) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", l.Path, err)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !found && *shard >= 0 {
		return fmt.Errorf("no log of shard %d in %s (spillway inspect lists them)", *shard, args[0])
	}
	return nil
}

// text returns b as a string if it is valid UTF-8, else in base64.
func text(b []byte) (utf, b64 *string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}
