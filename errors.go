package spillway

import (
	"errors"
	"fmt"
)

// The errors of package spillway. Operations wrap them with details; match
// them with errors.Is.
var (
	// ErrClosed: the Queue (or Topic) was closed, by this call's time or
	// while it waited.
	ErrClosed = errors.New("spillway: closed")
	// ErrFull: memory is full and the overflow policy is Reject (or Block,
	// for a call that must not wait, such as TrySend).
	ErrFull = errors.New("spillway: full")
	// ErrEmpty: a call that must not wait (TryReceive, TryReceiveBatch)
	// found no message it could take at once.
	ErrEmpty = errors.New("spillway: no message ready")
	// ErrTooLarge: a message exceeds Options.MaxMessageBytes, or its key
	// MaxKeyBytes, its headers MaxHeaders, its ID MaxIDBytes.
	ErrTooLarge = errors.New("spillway: message too large")
	// ErrInvalidMessage: a message's lifecycle fields contradict each
	// other or the options: a Priority of Options.Priorities or more, a
	// DeliverAt after its ExpiresAt.
	ErrInvalidMessage = errors.New("spillway: invalid message")
	// ErrDiskFull: memory is full and the spill has reached
	// Options.MaxDiskBytes or the device's capacity.
	ErrDiskFull = errors.New("spillway: spill quota or disk full")
	// ErrLeaseExpired: a Delivery was acknowledged (or nacked, extended,
	// terminated) after its lease ran out; the message has been or will be
	// redelivered.
	ErrLeaseExpired = errors.New("spillway: lease expired")
	// ErrNoLease: the delivery came from a queue in AutoAck mode and has no
	// lease to act on.
	ErrNoLease = errors.New("spillway: delivery has no lease (AutoAck)")
	// ErrInvalidOptions: OpenQueue or OpenTopic was given options it cannot use.
	ErrInvalidOptions = errors.New("spillway: invalid options")
	// ErrStorage: the disk under a Persistent queue failed (a write or an
	// fdatasync: the queue accepts nothing more, for a failed sync is never
	// retried and then believed), or its directory holds what it cannot use
	// (a manifest it cannot read or from a newer version, a missing
	// segment). Errors wrap the cause and name the file.
	ErrStorage = errors.New("spillway: storage failed")
	// ErrSpillFailed: part of a spill (a batch whose bytes on disk are not
	// what was written) or all of it (a write or sync error, a batch whose
	// header is unreadable) could not be read back after its messages were
	// accepted; those messages were dropped (and counted). Reported through
	// Options.OnError, wrapping the cause.
	ErrSpillFailed = errors.New("spillway: spill failed, messages were dropped")
)

// BatchError is the error of a SendBatch or PublishBatch that failed part
// way: the first Queued messages of the batch were queued (published), the
// rest were not. It wraps the cause, which errors.Is matches as usual
// (ErrFull, ErrClosed, ErrTooLarge, a context's error, ...). To go on with
// the rest:
//
//	var be *spillway.BatchError
//	if errors.As(err, &be) {
//		rest := ms[be.Queued:]
//		...
//	}
type BatchError struct {
	Queued int   // how many messages from the front of the batch were queued
	Err    error // why the next one was not
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("%v (the batch's first %d messages were queued)", e.Err, e.Queued)
}

func (e *BatchError) Unwrap() error { return e.Err }
