package spillway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/spillway-io/spillway/codec"
)

// Encryption seals everything a Queue or Topic writes to disk (spills,
// logs, the message bytes a journal keeps) with AES-256-GCM, batch by
// batch, after compression: see FORMAT.md, version 2. Keys are never
// written to disk, logged or put in an error.
//
// Rotation: set a new Current and keep the old ids in Keys until nothing
// sealed with them is left (spillway inspect lists the ids a directory's
// batches use).
type Encryption struct {
	Keys    map[uint32][]byte // key id -> 32-byte AES-256 key; every id whose batches must stay readable
	Current uint32            // the id new batches are sealed with
}

// sealing is a directory's encryption, open: the keyring, and the
// directory's identity that every sealed batch's context starts with.
type sealing struct {
	keys *codec.Keyring
	id   string
	// require: every batch in the directory is sealed (it was created
	// with Encryption): a plain one is refused as corrupt.
	require bool
}

// context returns the authenticated context of the batches of what (a
// shard's log, a spill, a journal) in the directory.
func (s *sealing) context(kind, what string) []byte {
	if s == nil {
		return nil
	}
	return []byte("spillway " + s.id + " " + kind + " " + what)
}

// keyChecks returns the key checks of e's keys, by id in decimal.
func keyChecks(e *Encryption, ids []uint32) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		c, err := codec.KeyCheck(e.Keys, id)
		if err != nil {
			return nil, fmt.Errorf("%w: Encryption: %w", ErrInvalidOptions, err)
		}
		out[fmt.Sprint(id)] = hex.EncodeToString(c)
	}
	return out, nil
}

// openSealing checks e against what the directory's manifest m says (nil:
// a new directory) and returns the sealing, with the manifest's key
// fields updated into next. A key held under an id the manifest knows
// must be the same key; a directory sealed before needs at least one of
// its keys.
func openSealing(e *Encryption, m *manifest, next *manifest) (*sealing, error) {
	if e == nil {
		if m != nil && len(m.Keys) > 0 {
			return nil, fmt.Errorf("%w: the directory is encrypted (key ids %v): give Options.Encryption", ErrInvalidOptions, manifestKeyIDs(m))
		}
		return nil, nil
	}
	keys, err := codec.NewKeyring(e.Keys, e.Current)
	if err != nil {
		return nil, fmt.Errorf("%w: Encryption: %w", ErrInvalidOptions, err)
	}
	checks, err := keyChecks(e, slices.Sorted(maps.Keys(e.Keys)))
	if err != nil {
		return nil, err
	}
	s := &sealing{keys: keys}
	next.Keys = map[string]string{}
	if m != nil && m.ID != "" {
		matched := false
		for id, check := range m.Keys {
			mine, ok := checks[id]
			if ok && mine != check {
				return nil, fmt.Errorf("%w: Encryption: key id %s is not the key the directory was written with", ErrInvalidOptions, id)
			}
			matched = matched || ok
			next.Keys[id] = check // kept: its batches may still be there
		}
		if len(m.Keys) > 0 && !matched {
			return nil, fmt.Errorf("%w: Encryption: the directory was written with key ids %v, and none of them is given", ErrInvalidOptions, manifestKeyIDs(m))
		}
		s.id, s.require = m.ID, m.Sealed
	} else {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("spillway: drawing a directory identity: %w", err)
		}
		s.id = hex.EncodeToString(b[:])
		s.require = m == nil // new: every batch is sealed from the start
	}
	cur := fmt.Sprint(e.Current)
	next.Keys[cur] = checks[cur]
	next.ID, next.Sealed = s.id, s.require
	return s, nil
}

// decoderOptions returns the options of a decoder of batches sealed for
// context (none without sealing).
func (s *sealing) decoderOptions(context []byte) []codec.DecoderOption {
	if s == nil {
		return nil
	}
	return []codec.DecoderOption{codec.WithKeyring(s.keys, context, s.require)}
}

func manifestKeyIDs(m *manifest) []string {
	return slices.Sorted(maps.Keys(m.Keys))
}
