package faultcheck

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder collects the history of one fault schedule as its clients and
// watchers, many goroutines at once, record it, and runs the checkers on
// it. The zero value is ready: its times are a counter, and every error
// leaves an operation's outcome unknown. Set NeverApplied and Clock
// before the first record; a Recorder must not be copied after.
type Recorder struct {
	// NeverApplied reports whether a call's error says the call never
	// took effect (it reached no leader, or no agent): AddOp leaves such
	// a call out of the history and counts it. nil: no error says so.
	NeverApplied func(error) bool
	// Clock returns the time of a call or a return, on any clock on
	// which an operation that returned before another was called has the
	// smaller times. nil: a counter bumped at every Now.
	Clock func() int64
	// Clients and Watchers are the goroutines that record into the
	// Recorder: the schedule's clients, and its watchers (which outlive
	// the clients, to see the last writes).
	Clients, Watchers sync.WaitGroup

	counter atomic.Int64

	mu      sync.Mutex
	ops     []KVOp
	writes  []Write
	holds   []Hold
	watches []*WatchLog
	leftOut int // calls that never took effect
}

// Now returns the time of a call or a return.
func (r *Recorder) Now() int64 {
	if r.Clock != nil {
		return r.Clock()
	}
	return r.counter.Add(1)
}

// AddOp records a call to a key, and w, the write it made if it is one.
// err is what the call returned: nil records op and w as they are (w
// acknowledged); an error that NeverApplied accepts leaves both out; any
// other error makes op's outcome unknown and w unacknowledged.
func (r *Recorder) AddOp(op KVOp, w *Write, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
	case r.NeverApplied != nil && r.NeverApplied(err):
		r.leftOut++
		return
	default:
		op.Return = Unknown
		if w != nil {
			w.Acked, w.Rev = false, 0
		}
	}
	r.ops = append(r.ops, op)
	if w != nil {
		r.writes = append(r.writes, *w)
	}
}

// AddHold records a semaphore slot a client held.
func (r *Recorder) AddHold(h Hold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holds = append(r.holds, h)
}

// NewWatch records a new watcher of prefix from revision from, named
// name, and returns its log, for Deliver, Seen and SetUntil.
func (r *Recorder) NewWatch(name, prefix string, from uint64) *WatchLog {
	log := &WatchLog{Name: name, Prefix: prefix, From: from}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watches = append(r.watches, log)
	return log
}

// Deliver records what a watch delivered, in log.
func (r *Recorder) Deliver(log *WatchLog, d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	log.Deliveries = append(log.Deliveries, d)
}

// Seen returns the revision a watch has seen everything up to: its last
// delivery's, or the one it watched from.
func (r *Recorder) Seen(log *WatchLog) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(log.Deliveries); n > 0 {
		return log.Deliveries[n-1].Rev
	}
	return log.From
}

// SetUntil requires of the watch of log that it saw every change up to
// revision rev (see WatchLog.Until).
func (r *Recorder) SetUntil(log *WatchLog, rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	log.Until = rev
}

// History is what a Recorder recorded.
type History struct {
	Ops     []KVOp
	Writes  []Write
	Holds   []Hold
	Watches []WatchLog
	// LeftOut counts the calls left out as never applied.
	LeftOut int
}

// History returns a copy of what was recorded so far.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := History{Ops: slices.Clone(r.ops), Writes: slices.Clone(r.writes), Holds: slices.Clone(r.holds), LeftOut: r.leftOut}
	for _, w := range r.watches {
		c := *w
		c.Deliveries = slices.Clone(w.Deliveries)
		h.Watches = append(h.Watches, c)
	}
	return h
}

// Counts is how much a history gives the checkers.
type Counts struct {
	// Ops counts the key operations recorded; Unknown those of unknown
	// outcome; Gets the gets that returned; LeftOut the calls left out as
	// never applied.
	Ops, Unknown, Gets, LeftOut int
	// Holds counts the semaphore slots held, Lost those lost.
	Holds, Lost int
	// Watchers counts the watchers, Deliveries what they were delivered,
	// Resyncs the resyncs among it.
	Watchers, Deliveries, Resyncs int
}

// Counts counts what was recorded so far.
func (r *Recorder) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Counts{Ops: len(r.ops), LeftOut: r.leftOut, Holds: len(r.holds), Watchers: len(r.watches)}
	for _, op := range r.ops {
		switch {
		case op.Return == Unknown:
			c.Unknown++
		case op.Kind == Get:
			c.Gets++
		}
	}
	for _, h := range r.holds {
		if h.Lost {
			c.Lost++
		}
	}
	for _, w := range r.watches {
		for _, d := range w.Deliveries {
			c.Deliveries++
			if d.Resync {
				c.Resyncs++
			}
		}
	}
	return c
}

// Check runs the checkers on what was recorded, once the clients and
// watchers are done: Linearizable on the key operations (each key's
// search given timeout), Semaphores on the holds, Watch on every watcher
// against committed, every change the cluster committed, and Durable on
// the writes against each node's keys in finals. It returns the
// violations found, nil if none.
func (r *Recorder) Check(committed []Change, finals map[string]map[string]KV, timeout time.Duration) []error {
	h := r.History()
	errs := []error{Linearizable(h.Ops, timeout), Semaphores(h.Holds)}
	for _, w := range h.Watches {
		errs = append(errs, Watch(committed, w))
	}
	for _, node := range slices.Sorted(maps.Keys(finals)) {
		errs = append(errs, Durable(node, h.Writes, finals[node]))
	}
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
