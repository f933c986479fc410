package world

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftcm/graft/fsm"
)

// WatchEvent is what a watch delivers: the changes of one or more
// revisions, in order, or a resync.
type WatchEvent struct {
	// Events are the changes under the prefix, in revision order.
	Events []fsm.Event
	// Rev is the revision the watcher has now seen everything up to;
	// resuming a watch from it misses nothing.
	Rev uint64
	// Resync is set when the changes after the revision the watch started
	// from (or last delivered) are no longer kept, because the watcher
	// fell too far behind or the node installed a snapshot. State then
	// holds every key under the prefix at Rev: replace what you had.
	Resync bool
	State  []fsm.KV
}

// watchBatch bounds the events read per step.
const watchBatch = 1024

// Watch follows the keys under prefix, from after revision from (0: from
// now), delivering every change, in order, until ctx ends; the channel is
// then closed. A consumer that reads slowly delays only its own watch: the
// state machine never waits for it. A watch started from a revision older
// than the kept history begins with a Resync.
func (w *World) Watch(ctx context.Context, prefix string, from uint64) <-chan WatchEvent {
	out := make(chan WatchEvent, 16)
	if from == 0 {
		from = w.f.Rev()
	}
	go func() {
		defer close(out)
		p := w.watches.add(from)
		defer w.watches.remove(p)
		after := from
		woke := time.Now()
		for {
			changed := w.f.Changed()
			evs, through, err := w.f.Events(after, prefix, watchBatch)
			var ev WatchEvent
			var ce *fsm.CompactedError
			switch {
			case errors.As(err, &ce):
				kvs, rev := w.f.List(prefix, 0)
				ev = WatchEvent{Rev: rev, Resync: true, State: kvs}
				after = rev
			case err != nil:
				w.log.Error("watch stopped", "prefix", prefix, "err", err)
				return
			case len(evs) > 0:
				ev = WatchEvent{Events: evs, Rev: through}
				after = through
			default:
				after = through
				p.caughtUp(through)
				select {
				case <-ctx.Done():
					return
				case <-changed:
				}
				woke = time.Now()
				continue
			}
			p.behind(woke)
			select {
			case out <- ev:
				p.delivered(ev.Rev)
			case <-ctx.Done():
				return
			}
			woke = time.Now()
		}
	}()
	return out
}

// WatchStats describes the watches of a World at one moment: how far the
// one furthest behind is from delivering every change this node has
// applied. A change counts as delivered once it is in the watch's channel
// (which buffers a few batches).
type WatchStats struct {
	// Watches counts the watches running.
	Watches int
	// LagRevisions is the most revisions a watch has yet to deliver: the
	// World's revision minus the last one the watch delivered or found
	// nothing for it in.
	LagRevisions uint64
	// Lag is the longest a watch has had changes it has not delivered,
	// counted from when it was woken for the first of them.
	Lag time.Duration
}

// WatchStats returns the state of the World's watches.
func (w *World) WatchStats() WatchStats {
	rev := w.f.Rev()
	now := time.Now()
	w.watches.mu.Lock()
	defer w.watches.mu.Unlock()
	st := WatchStats{Watches: len(w.watches.m)}
	for p := range w.watches.m {
		if seen := p.seen.Load(); rev > seen {
			st.LagRevisions = max(st.LagRevisions, rev-seen)
		}
		if since := p.since.Load(); since != 0 {
			st.Lag = max(st.Lag, now.Sub(time.Unix(0, since)))
		}
	}
	return st
}

// watchSet holds the running watches of a World.
type watchSet struct {
	mu sync.Mutex
	m  map[*watchProgress]struct{}
}

func newWatchSet() *watchSet { return &watchSet{m: map[*watchProgress]struct{}{}} }

func (s *watchSet) add(from uint64) *watchProgress {
	p := &watchProgress{}
	p.seen.Store(from)
	s.mu.Lock()
	s.m[p] = struct{}{}
	s.mu.Unlock()
	return p
}

func (s *watchSet) remove(p *watchProgress) {
	s.mu.Lock()
	delete(s.m, p)
	s.mu.Unlock()
}

// watchProgress is how far one watch has delivered, written by its
// goroutine and read by WatchStats.
type watchProgress struct {
	seen  atomic.Uint64 // the revision delivered through, or found nothing for the watch through
	since atomic.Int64  // Unix nanoseconds since the watch has had undelivered changes; 0 if none
}

// behind records that the watch, woken at woke, has changes to deliver.
func (p *watchProgress) behind(woke time.Time) {
	if p.since.Load() == 0 {
		p.since.Store(woke.UnixNano())
	}
}

// delivered records that the changes through rev are in the channel.
func (p *watchProgress) delivered(rev uint64) { p.seen.Store(rev) }

// caughtUp records that the watch has nothing to deliver through rev.
func (p *watchProgress) caughtUp(rev uint64) {
	p.seen.Store(rev)
	p.since.Store(0)
}
