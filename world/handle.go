package world

import (
	"context"
	"fmt"
	"sync"
)

// Handle is a stable way to reach the World of an agent whose cluster side
// can restart (a node moving to another cluster gets a new World). The
// agent hands it to the engine and to its graph sources once, and Sets the
// World whenever a cluster side starts.
//
// It satisfies engine.World and engine.ClusterSemaphores by forwarding each
// call to the current World; a call made while there is none (before the
// first Set, or after Set(nil)) waits for one until its context ends.
// Watches started through it outlive a Set: they re-arm on the new World
// and report one change, so that their receiver reads again. A semaphore
// slot taken through it counts as lost when its World is replaced, and a
// wait for one queues again on the new World.
//
// The zero value is ready to use, with no World. A Handle must not be
// copied after first use.
type Handle struct {
	mu       sync.Mutex
	w        *World
	replaced chan struct{} // closed when w is replaced; made on first use
}

// NewHandle returns a Handle with no World.
func NewHandle() *Handle { return &Handle{} }

// Set makes w the current World (nil: none, until the next Set) and
// closes the channel Current returned with the previous one. Setting the
// current World again changes nothing.
func (h *Handle) Set(w *World) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.replaced != nil && w == h.w {
		return
	}
	h.w = w
	if h.replaced != nil {
		close(h.replaced)
	}
	h.replaced = make(chan struct{})
}

// Current returns the current World, nil if there is none, and a channel
// closed when it is replaced (by another World or by none).
func (h *Handle) Current() (*World, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.replaced == nil {
		h.replaced = make(chan struct{})
	}
	return h.w, h.replaced
}

// Wait returns the current World and the channel closed when it is
// replaced, waiting for a World to be set until ctx ends.
func (h *Handle) Wait(ctx context.Context) (*World, <-chan struct{}, error) {
	for {
		w, replaced := h.Current()
		if w != nil {
			return w, replaced, nil
		}
		select {
		case <-replaced:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("world: the cluster side is not running: %w", ctx.Err())
		}
	}
}

// KVGet is World.KVGet on the current World.
func (h *Handle) KVGet(ctx context.Context, key string) ([]byte, bool, error) {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return nil, false, err
	}
	return w.KVGet(ctx, key)
}

// KVPut is World.KVPut on the current World.
func (h *Handle) KVPut(ctx context.Context, key string, value []byte) error {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return err
	}
	return w.KVPut(ctx, key, value)
}

// KVDelete is World.KVDelete on the current World.
func (h *Handle) KVDelete(ctx context.Context, key string) error {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return err
	}
	return w.KVDelete(ctx, key)
}

// KVSwap is World.KVSwap on the current World.
func (h *Handle) KVSwap(ctx context.Context, key string, old []byte, exists bool, value []byte) (bool, error) {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return false, err
	}
	return w.KVSwap(ctx, key, old, exists, value)
}

// KVWatch is World.KVWatch on the current World and on each World set
// after it (see Handle).
func (h *Handle) KVWatch(ctx context.Context, key string) (<-chan struct{}, error) {
	return h.watch(ctx, key, (*World).KVWatch)
}

// KVHostGet is World.KVHostGet on the current World.
func (h *Handle) KVHostGet(ctx context.Context, key string) (map[string][]byte, error) {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return w.KVHostGet(ctx, key)
}

// KVHostPut is World.KVHostPut on the current World.
func (h *Handle) KVHostPut(ctx context.Context, key string, value []byte) error {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return err
	}
	return w.KVHostPut(ctx, key, value)
}

// KVHostDelete is World.KVHostDelete on the current World.
func (h *Handle) KVHostDelete(ctx context.Context, key string) error {
	w, _, err := h.Wait(ctx)
	if err != nil {
		return err
	}
	return w.KVHostDelete(ctx, key)
}

// KVHostWatch is World.KVHostWatch on the current World and on each World
// set after it (see Handle).
func (h *Handle) KVHostWatch(ctx context.Context, key string) (<-chan struct{}, error) {
	return h.watch(ctx, key, (*World).KVHostWatch)
}

// AcquireSlot is World.AcquireSlot on the current World, but the slot also
// counts as lost when that World is replaced: it belongs to a cluster this
// host no longer takes part in. A wait for a slot that the replacement
// cuts short queues again on the new World. Releasing a slot of a
// replaced World does not fail: it is tried once, and a failure logged.
func (h *Handle) AcquireSlot(ctx context.Context, id string, count int64) (uint64, <-chan struct{}, func(context.Context) error, error) {
	for {
		w, replaced, err := h.Wait(ctx)
		if err != nil {
			return 0, nil, nil, err
		}
		token, lost, release, err := acquireUntil(ctx, w, replaced, id, count)
		if isClosed(replaced) && ctx.Err() == nil {
			if err == nil { // granted as the World went: give it back, best effort
				_ = release(ctx)
			}
			continue
		}
		if err != nil {
			return 0, nil, nil, err
		}
		out, done := make(chan struct{}), make(chan struct{})
		go func() { // stops when the slot is lost or released
			select {
			case <-lost:
			case <-replaced:
			case <-done:
				return
			}
			close(out)
		}()
		var once sync.Once
		return token, out, func(ctx context.Context) error {
			once.Do(func() { close(done) })
			err := release(ctx)
			if err != nil && isClosed(replaced) {
				// No retry can help: this host no longer takes part in
				// that cluster, which frees the slot when it declares
				// the host dead or gone.
				w.log.Warn("could not release a semaphore slot of a cluster this host has left; "+
					"that cluster frees it when it declares this host dead or gone", "sema", id, "token", token, "err", err)
				return nil
			}
			return err
		}, nil
	}
}

// acquireUntil is w.AcquireSlot, whose wait ends when replaced closes.
func acquireUntil(ctx context.Context, w *World, replaced <-chan struct{}, id string, count int64) (uint64, <-chan struct{}, func(context.Context) error, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with actx, at the latest when this returns
		select {
		case <-replaced:
			cancel()
		case <-actx.Done():
		}
	}()
	return w.AcquireSlot(actx, id, count)
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// watchFunc starts a watch of key on a World.
type watchFunc func(w *World, ctx context.Context, key string) (<-chan struct{}, error)

// watch starts a watch of key on the current World, waiting for one, and
// keeps it on whichever World is current until ctx ends.
func (h *Handle) watch(ctx context.Context, key string, start watchFunc) (<-chan struct{}, error) {
	w, replaced, err := h.Wait(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	in, err := start(w, wctx, key)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer func() { cancel() }() // the watch of the World current at the end
		for {
			select {
			case _, ok := <-in:
				if !ok { // ctx ended, or the World's watch failed (it logs why)
					return
				}
			case <-replaced:
				cancel()
				if w, replaced, err = h.Wait(ctx); err != nil {
					return
				}
				wctx, cancel = context.WithCancel(ctx)
				if in, err = start(w, wctx, key); err != nil {
					return // the key was accepted by the first World: not reached
				}
			case <-ctx.Done():
				return
			}
			select {
			case out <- struct{}{}:
			default: // one is pending
			}
		}
	}()
	return out, nil
}
