package world

import (
	"context"
	"errors"

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
		after := from
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
				select {
				case <-ctx.Done():
					return
				case <-changed:
				}
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
