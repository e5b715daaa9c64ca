package spillway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/spillway-io/spillway/mmap"
)

// A directory's MANIFEST says what it holds, so that nothing misreads it:
// three lines of text,
//
//	spillway-manifest
//	{"format":1,"kind":"queue","durability":"persistent","shards":4,...}
//	xxh64 0123456789abcdef
//
// the magic line, the settings as JSON, and the xxhash64 of the JSON line
// (without its newline) in hex. It is written whole to MANIFEST.tmp,
// synced, renamed over MANIFEST, and the directory synced: a crash leaves
// the old manifest or the new one, never a mix. A reader refuses a format
// newer than it knows.
const (
	manifestName   = "MANIFEST"
	manifestMagic  = "spillway-manifest"
	manifestFormat = 2 // 2: encryption fields; written only when they are set
)

// manifest is what MANIFEST records.
type manifest struct {
	Format      int    `json:"format"`
	Kind        string `json:"kind"`       // "queue" or "topic"
	Durability  string `json:"durability"` // Durability.String()
	Shards      int    `json:"shards"`
	Priorities  int    `json:"priorities,omitempty"` // priority levels, each with Shards shards; absent: 1
	Sync        string `json:"sync,omitempty"`       // SyncPolicy.String(), Persistent only
	Compression string `json:"compression"`
	// Encryption (format 2): the directory's identity, bound into every
	// sealed batch; whether every batch is sealed (it was created with
	// Encryption); and a check value of each key id batches were sealed
	// with (codec.KeyCheck, hex), so that a wrong key is refused at open.
	ID     string            `json:"id,omitempty"`
	Sealed bool              `json:"sealed,omitempty"`
	Keys   map[string]string `json:"keys,omitempty"`
}

// equal reports whether m and o record the same.
func (m manifest) equal(o manifest) bool { return bytes.Equal(m.marshal(), o.marshal()) }

func newManifest(o *Options, kind string) manifest {
	m := manifest{Format: 1, Kind: kind, Durability: o.Durability.String(), Shards: o.Shards, Compression: o.Compression.String()}
	if o.Priorities > 1 {
		m.Priorities = o.Priorities
	}
	if o.Durability == Persistent {
		m.Sync = o.Sync.String()
	}
	return m
}

func (m manifest) marshal() []byte {
	if len(m.Keys) > 0 {
		m.Format = max(m.Format, 2) // an older reader must refuse an encrypted directory, not misread it
	}
	js, err := json.Marshal(m)
	if err != nil {
		panic(err) // a struct of strings and ints always marshals
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%s\nxxh64 %016x\n", manifestMagic, js, xxhash.Sum64(js))
	return b.Bytes()
}

// errNoManifest: the directory has no MANIFEST.
var errNoManifest = errors.New("no manifest")

// readManifest reads dir's MANIFEST. A missing one is errNoManifest; one
// that is unreadable, damaged or from a newer format is ErrStorage, naming
// the file.
func readManifest(fsys mmap.FS, dir string) (manifest, error) {
	var m manifest
	path := filepath.Join(dir, manifestName)
	data, err := readFileAll(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, errNoManifest
	}
	if err != nil {
		return m, fmt.Errorf("%w: reading %s: %w", ErrStorage, path, err)
	}
	bad := func(why string) (manifest, error) {
		return manifest{}, fmt.Errorf("%w: %s is damaged (%s); it says what the directory holds, so the directory cannot be opened without it", ErrStorage, path, why)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != 3 || string(lines[0]) != manifestMagic {
		return bad("not three lines starting with " + manifestMagic)
	}
	sum, ok := bytes.CutPrefix(lines[2], []byte("xxh64 "))
	want, perr := strconv.ParseUint(string(sum), 16, 64)
	if !ok || perr != nil || len(sum) != 16 {
		return bad("no checksum line")
	}
	if xxhash.Sum64(lines[1]) != want {
		return bad("checksum mismatch")
	}
	// The format field first, so that a newer layout is refused as such.
	var v struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(lines[1], &v); err != nil {
		return bad(err.Error())
	}
	if v.Format > manifestFormat || v.Format < 1 {
		return manifest{}, fmt.Errorf("%w: %s has format %d; this version of spillway reads formats up to %d (a newer version wrote it)", ErrStorage, path, v.Format, manifestFormat)
	}
	if err := json.Unmarshal(lines[1], &m); err != nil {
		return bad(err.Error())
	}
	return m, nil
}

// writeManifest replaces dir's MANIFEST atomically and durably.
func writeManifest(fsys mmap.FS, dir string, m manifest) error {
	path := filepath.Join(dir, manifestName)
	tmp := path + ".tmp"
	if err := writeDurably(fsys, tmp, m.marshal()); err != nil {
		return fmt.Errorf("%w: writing %s: %w", ErrStorage, tmp, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: renaming %s: %w", ErrStorage, tmp, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("%w: syncing %s: %w", ErrStorage, dir, err)
	}
	return nil
}

// writeDurably writes a whole file and syncs it.
func writeDurably(fsys mmap.FS, path string, data []byte) error {
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// levels returns the priority levels m records.
func (m manifest) levels() int { return max(m.Priorities, 1) }
