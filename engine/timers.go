package engine

import (
	"container/heap"
	"time"
)

// timerKind says what a due timer does.
type timerKind uint8

const (
	timerRetry      timerKind = iota // retry a failed CheckApply
	timerWatchRetry                  // restart a failed Watch
	timerPoll                        // poll: check the vertex again
	timerLimit                       // release an event held by the rate limit
)

// timerEntry is one scheduled wake-up. gen must match the node's generation
// for that kind when it fires, or the entry is stale and ignored.
type timerEntry struct {
	at   time.Time
	n    *node
	kind timerKind
	gen  uint64
}

// timerQueue is the scheduler's one clock: a min-heap of wake-ups and a
// single time.Timer armed for the earliest. Retries, polls and rate limits
// therefore cost no goroutines, and stopping the engine interrupts every
// wait at once. Owned by the scheduler goroutine.
type timerQueue struct {
	h       timerHeap
	t       *time.Timer
	armed   bool
	armedAt time.Time
}

func (q *timerQueue) add(e timerEntry) { heap.Push(&q.h, e) }

// due pops every entry due at now.
func (q *timerQueue) due(now time.Time, out []timerEntry) []timerEntry {
	for len(q.h) > 0 && !q.h[0].at.After(now) {
		out = append(out, heap.Pop(&q.h).(timerEntry))
	}
	return out
}

// channel arms the timer for the earliest entry and returns its channel, or
// nil when nothing is scheduled.
func (q *timerQueue) channel(now time.Time) <-chan time.Time {
	if len(q.h) == 0 {
		if q.armed {
			q.t.Stop()
			q.armed = false
		}
		return nil
	}
	next := q.h[0].at
	if !q.armed || !q.armedAt.Equal(next) {
		wait := max(next.Sub(now), 0)
		if q.t == nil {
			q.t = time.NewTimer(wait)
		} else {
			q.t.Reset(wait)
		}
		q.armed, q.armedAt = true, next
	}
	return q.t.C
}

// fired tells the queue its timer's channel was received from.
func (q *timerQueue) fired() { q.armed = false }

func (q *timerQueue) stop() {
	if q.t != nil {
		q.t.Stop()
	}
	q.armed = false
	q.h = nil
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return e
}
