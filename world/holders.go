package world

import "sync"

// holders tracks the semaphore holders this World's callers still own: an
// Acquire under way, or a Lease not yet released. A holder of this host in
// the cluster's state that is not tracked is stale: an earlier process
// left it, or this one failed to give it back (the cluster was out of
// reach); ReleaseStale gives those back.
type holders struct {
	mu       sync.Mutex
	live     map[string]bool
	orphaned chan struct{} // receives after a give-back failed
}

func newHolders() *holders {
	return &holders{live: map[string]bool{}, orphaned: make(chan struct{}, 1)}
}

// track records holder as owned, before it is asked for.
func (h *holders) track(holder string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live[holder] = true
}

// drop records that holder is no longer owned, once its give-back was
// tried; failed says that it may still be held or queued.
func (h *holders) drop(holder string, failed bool) {
	h.mu.Lock()
	delete(h.live, holder)
	h.mu.Unlock()
	if failed {
		select {
		case h.orphaned <- struct{}{}:
		default: // a sweep is already due
		}
	}
}

func (h *holders) isLive(holder string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[holder]
}

// Orphaned receives after this World failed to give back a semaphore slot
// or queue place (the cluster out of reach): call ReleaseStale, once the
// cluster can be reached, to give it back.
func (w *World) Orphaned() <-chan struct{} { return w.holders.orphaned }
