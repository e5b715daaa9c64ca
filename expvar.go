package spillway

import "expvar"

// ExpvarVar returns the queue's Stats as an expvar.Var (JSON, read on each
// call of its String). Publishing it, under a name of the caller's choice,
// is the caller's: expvar.Publish("queue.orders", q.ExpvarVar()).
func (q *Queue) ExpvarVar() expvar.Var { return expvar.Func(func() any { return q.Stats() }) }

// ExpvarVar returns the topic's Stats as an expvar.Var (see
// Queue.ExpvarVar).
func (t *Topic) ExpvarVar() expvar.Var { return expvar.Func(func() any { return t.Stats() }) }

// ExpvarVar returns the subscription's Stats as an expvar.Var (see
// Queue.ExpvarVar).
func (r *Subscription) ExpvarVar() expvar.Var {
	return expvar.Func(func() any { return r.Stats() })
}
