package spillway

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RetentionPolicy says what keeps a Persistent topic's messages.
type RetentionPolicy int

const (
	// Interest (the default) keeps a message until every subscription has
	// it (has been handed it, under AutoAck; has settled it, under
	// ManualAck). A topic with no subscription keeps what the limits
	// allow (nothing, without limits), so that a subscription made later
	// can start at the earliest of it.
	Interest RetentionPolicy = iota
	// Limits keeps messages for Retention.MaxAge and MaxBytes, whatever
	// the subscriptions did: a subscription that falls behind the
	// retained range skips ahead, and counts what it skipped in
	// Stats.Trimmed.
	Limits
)

func (p RetentionPolicy) String() string {
	switch p {
	case Interest:
		return "interest"
	case Limits:
		return "limits"
	}
	return "unknown"
}

// Retention bounds how long a Persistent topic keeps its messages. It
// applies by whole log segments: a segment goes when every message in it
// may go (so a little more than the limits may be kept, at most one
// segment per shard).
type Retention struct {
	// MaxAge: segments whose last message is older than this may go. 0:
	// no limit.
	MaxAge time.Duration
	// MaxBytes: the oldest segments of a shard's log go while the shard
	// holds more than this many bytes of messages. 0: no limit.
	MaxBytes int64
	// Policy: Interest (the default) or Limits.
	Policy RetentionPolicy
}

// StartAt says where a new subscription starts, or where Seek moves one:
// Earliest, Latest, AtTime or AtPosition. The zero value is Latest.
type StartAt struct {
	kind startKind
	at   time.Time
	pos  Position
}

type startKind uint8

const (
	startLatest startKind = iota
	startEarliest
	startTime
	startPosition
)

// Earliest starts at the oldest message the topic retains, in every shard.
func Earliest() StartAt { return StartAt{kind: startEarliest} }

// Latest starts after the last message published: the subscription gets
// what is published from then on. The default.
func Latest() StartAt { return StartAt{kind: startLatest} }

// AtTime starts, in every shard, at the first message published at or
// after t (by the topic's Clock). A t before the retained range starts at
// the earliest message; a t after the last message, at the end.
func AtTime(t time.Time) StartAt { return StartAt{kind: startTime, at: t} }

// AtPosition starts at p: in every shard, at the message at p's offset
// (the first one a subscription with Position p had not settled). An
// offset before the retained range starts at the earliest message.
func AtPosition(p Position) StartAt { return StartAt{kind: startPosition, pos: p} }

// String returns "earliest", "latest", "time:" and an RFC 3339 time, or
// "position:" and a Position.
func (s StartAt) String() string {
	switch s.kind {
	case startEarliest:
		return "earliest"
	case startTime:
		return "time:" + s.at.UTC().Format(time.RFC3339Nano)
	case startPosition:
		return "position:" + s.pos.String()
	}
	return "latest"
}

// parseStartAt reads what StartAt.String wrote.
func parseStartAt(text string) (StartAt, error) {
	switch {
	case text == "earliest":
		return Earliest(), nil
	case text == "latest":
		return Latest(), nil
	case strings.HasPrefix(text, "time:"):
		t, err := time.Parse(time.RFC3339Nano, text[len("time:"):])
		if err != nil {
			return StartAt{}, fmt.Errorf("%w: start %q: %v", ErrInvalidOptions, text, err)
		}
		return AtTime(t), nil
	case strings.HasPrefix(text, "position:"):
		p, err := ParsePosition(text[len("position:"):])
		if err != nil {
			return StartAt{}, err
		}
		return AtPosition(p), nil
	}
	return StartAt{}, fmt.Errorf("%w: start %q: want earliest, latest, time:<RFC 3339> or position:<offsets>", ErrInvalidOptions, text)
}

// Position is where a subscription is in a topic: one offset per shard,
// that of the first message it has not settled (everything before it is
// settled). Positions are comparable with ==; String and ParsePosition
// turn them into text and back. The zero Position has no shards.
type Position struct {
	text string // the offsets in decimal, comma-separated: the canonical form
}

// newPosition returns the Position of offs.
func newPosition(offs []uint64) Position {
	var b []byte
	for i, o := range offs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, o, 10)
	}
	return Position{text: string(b)}
}

// ParsePosition parses what Position.String returns: the offsets of the
// shards in order, in decimal, separated by commas. It fails with
// ErrInvalidOptions, saying why, on anything else.
func ParsePosition(text string) (Position, error) {
	if text == "" {
		return Position{}, fmt.Errorf("%w: position: empty", ErrInvalidOptions)
	}
	parts := strings.Split(text, ",")
	offs := make([]uint64, len(parts))
	for i, p := range parts {
		o, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Position{}, fmt.Errorf("%w: position %q: shard %d: %q is not an offset", ErrInvalidOptions, text, i, p)
		}
		offs[i] = o
	}
	if len(offs) > maxShards {
		return Position{}, fmt.Errorf("%w: position %q: %d shards, at most %d", ErrInvalidOptions, text, len(offs), maxShards)
	}
	return newPosition(offs), nil // canonical: "007" reads as "7"
}

// String returns the offsets, comma-separated ("120,98,0,77").
func (p Position) String() string { return p.text }

// Offsets returns the offset of each shard.
func (p Position) Offsets() []uint64 {
	if p.text == "" {
		return nil
	}
	parts := strings.Split(p.text, ",")
	offs := make([]uint64, len(parts))
	for i, s := range parts {
		offs[i], _ = strconv.ParseUint(s, 10, 64) // canonical by construction
	}
	return offs
}

// Shards returns how many shards p has an offset for.
func (p Position) Shards() int {
	if p.text == "" {
		return 0
	}
	return strings.Count(p.text, ",") + 1
}
