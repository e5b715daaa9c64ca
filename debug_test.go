package spillway

import "fmt"

// dump describes every shard's state (ring, carry, spill positions), for
// the message of a test that finds a Queue stuck.
func (q *Queue) dump() string {
	out := ""
	for _, s := range q.shards {
		sp := s.spill.Load()
		carry := "held by a receiver"
		if s.recvMu.TryLock() {
			carry = fmt.Sprint(len(s.carry) - s.carryNext)
			s.recvMu.Unlock()
		}
		out += fmt.Sprintf("shard %d: ringLen=%d spilling=%v carry=%s sp=%v", s.idx, s.ring.Len(), s.spilling.Load(), carry, sp != nil)
		if sp != nil {
			out += fmt.Sprintf(" written=%d read=%d pending=%d logNext=%d readerOff=%d", sp.written, sp.read, sp.pending.Load(), sp.log.NextOffset(), sp.r.Offset())
		}
		out += "\n"
	}
	return out
}
