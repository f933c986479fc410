package fsm

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrCompacted matches every *CompactedError (with errors.Is).
var ErrCompacted = errors.New("events compacted")

// CompactedError says that the events a watcher asked for are no longer
// kept. The watcher lists the keys again (at revision Current or later) and
// watches from there.
type CompactedError struct {
	// Current is the revision at the time of the error.
	Current uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("events compacted: current revision %d", e.Current)
}

// Is makes errors.Is(err, ErrCompacted) hold.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// history is the bounded log of recent events, oldest first. Every
// revision above compacted has all its events in it.
type history struct {
	limit     int
	evs       []Event // evs[start:] are kept
	start     int
	compacted uint64 // events of this revision and older are gone
}

func (h *history) kept() []Event { return h.evs[h.start:] }

func (h *history) add(e Event) { h.evs = append(h.evs, e) }

// trim drops the oldest revisions until at most limit events are left.
func (h *history) trim() {
	for len(h.evs)-h.start > h.limit {
		rev := h.evs[h.start].KV.ModRev
		for h.start < len(h.evs) && h.evs[h.start].KV.ModRev == rev {
			h.evs[h.start] = Event{} // let the value go
			h.start++
		}
		h.compacted = rev
	}
	// Move the kept events down once the dropped ones are the majority,
	// so the slice does not grow for ever; let go of an array that one
	// huge revision made much larger than the limit.
	if h.start > 0 && h.start >= len(h.evs)-h.start {
		kept := h.evs[h.start:]
		if cap(h.evs) > 4*h.limit {
			h.evs = append([]Event(nil), kept...)
		} else {
			n := copy(h.evs, kept)
			clear(h.evs[n:])
			h.evs = h.evs[:n]
		}
		h.start = 0
	}
}

// reset drops every event: watchers behind rev are compacted.
func (h *history) reset(rev uint64) {
	h.evs = nil
	h.start = 0
	h.compacted = rev
}

// since returns the events after revision after whose key has the prefix,
// stopping at the first revision boundary once limit (if > 0) are gathered.
// more reports whether it stopped there, through the revision it reached.
func (h *history) since(after uint64, prefix string, limit int) (evs []Event, through uint64, more bool) {
	kept := h.kept()
	i := sort.Search(len(kept), func(i int) bool { return kept[i].KV.ModRev > after })
	for ; i < len(kept); i++ {
		e := &kept[i]
		if limit > 0 && len(evs) >= limit && e.KV.ModRev != kept[i-1].KV.ModRev {
			return evs, kept[i-1].KV.ModRev, true
		}
		if strings.HasPrefix(e.KV.Key, prefix) {
			evs = append(evs, *e)
		}
	}
	return evs, 0, false
}
