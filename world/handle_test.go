package world_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/world"
)

// twoWorlds returns the Worlds of two separate single-node clusters, as an
// agent has before and after its cluster side restarts into another
// cluster.
func twoWorlds(t *testing.T) (*world.World, *world.World) {
	t.Helper()
	_, a := worlds(t, 1)
	_, b := worlds(t, 1)
	return a[0], b[0]
}

// Calls made before the first Set wait for it, bounded by their context.
func TestHandleCallsWaitForTheFirstWorld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, _ := twoWorlds(t)
		h := world.NewHandle()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, _, err := h.KVGet(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("KVGet with no World and a 1s context: %v", err)
		}
		put := make(chan error, 1)
		go func() { put <- h.KVPut(t.Context(), "k", []byte("v")) }()
		synctest.Wait()
		select {
		case err := <-put:
			t.Fatalf("KVPut with no World returned %v", err)
		default:
		}
		h.Set(w)
		select {
		case err := <-put:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a KVPut waiting for a World did not go ahead once one was set")
		}
		if v, ok, _ := w.KVGet(t.Context(), "k"); !ok || string(v) != "v" {
			t.Errorf("the waiting KVPut left %q %t", v, ok)
		}
	})
}

// Calls go to the World set last; Current's channel closes on a Set.
func TestHandleForwardsToTheCurrentWorld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := twoWorlds(t)
		var h world.Handle // the zero value is ready
		h.Set(a)
		cur, replaced := h.Current()
		if cur != a {
			t.Fatal("Current is not the World set")
		}
		h.Set(a)
		select {
		case <-replaced:
			t.Error("setting the same World again closed Current's channel")
		default:
		}
		h.Set(b)
		select {
		case <-replaced:
		default:
			t.Fatal("Set of another World left Current's channel open")
		}
		ctx := t.Context()
		if err := h.KVPut(ctx, "k", []byte("b")); err != nil {
			t.Fatal(err)
		}
		if err := h.KVHostPut(ctx, "hk", []byte("b")); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := a.KVGet(ctx, "k"); ok {
			t.Error("a put after Set(b) reached a")
		}
		if v, ok, _ := h.KVGet(ctx, "k"); !ok || string(v) != "b" {
			t.Errorf("KVGet through the handle: %q %t", v, ok)
		}
		if vals, _ := h.KVHostGet(ctx, "hk"); string(vals["node0"]) != "b" || len(vals) != 1 {
			t.Errorf("KVHostGet through the handle: %q", vals)
		}
		if err := h.KVDelete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := h.KVHostDelete(ctx, "hk"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.KVGet(ctx, "k"); ok {
			t.Error("KVDelete through the handle left the key")
		}
		if vals, _ := b.KVHostGet(ctx, "hk"); len(vals) != 0 {
			t.Errorf("KVHostDelete through the handle left %q", vals)
		}
	})
}

// A watch started through the handle survives a Set: it reports one
// change when the World is replaced, then follows the key in the new
// World only; across a Set(nil) it waits for the next World.
func TestHandleWatchRearmsOnTheNewWorld(t *testing.T) {
	for _, tc := range []struct {
		name  string
		watch func(*world.Handle, context.Context) (<-chan struct{}, error)
		put   func(w *world.World, ctx context.Context, value []byte) error
	}{
		{"global", func(h *world.Handle, ctx context.Context) (<-chan struct{}, error) { return h.KVWatch(ctx, "k") },
			func(w *world.World, ctx context.Context, v []byte) error { return w.KVPut(ctx, "k", v) }},
		{"per-host", func(h *world.Handle, ctx context.Context) (<-chan struct{}, error) { return h.KVHostWatch(ctx, "k") },
			func(w *world.World, ctx context.Context, v []byte) error { return w.KVHostPut(ctx, "k", v) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := twoWorlds(t)
				h := world.NewHandle()
				h.Set(a)
				ctx, cancel := context.WithCancel(t.Context())
				ch, err := tc.watch(h, ctx)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				put := func(w *world.World) {
					t.Helper()
					n++
					if err := tc.put(w, t.Context(), []byte(fmt.Sprint(n))); err != nil {
						t.Fatal(err)
					}
				}
				put(a)
				if !pending(t, a, ch) {
					t.Fatal("a change in the first World was not reported")
				}
				h.Set(b)
				if !pending(t, b, ch) {
					t.Fatal("replacing the World was not reported")
				}
				if pending(t, b, ch) {
					t.Error("replacing the World was reported more than once")
				}
				put(a)
				if pending(t, a, ch) {
					t.Error("a change in the replaced World was reported")
				}
				put(b)
				if !pending(t, b, ch) {
					t.Fatal("a change in the new World was not reported")
				}
				h.Set(nil)
				if pending(t, b, ch) {
					t.Error("a Set(nil) was reported before a World came back")
				}
				h.Set(a)
				if !pending(t, a, ch) {
					t.Fatal("a World set after none was not reported")
				}
				put(a)
				if !pending(t, a, ch) {
					t.Fatal("a change after the watch came back was not reported")
				}
				cancel()
				if _, ok := <-ch; ok {
					t.Error("the channel was not closed when the context ended")
				}
			})
		})
	}
}

// A semaphore slot taken through the handle is lost when the World is
// replaced, and can still be released.
func TestHandleSlotLostWhenTheWorldIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := twoWorlds(t)
		h := world.NewHandle()
		h.Set(a)
		ctx := t.Context()
		_, lost, release, err := h.AcquireSlot(ctx, "job", 1)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case <-lost:
			t.Fatal("a slot was lost with its World current")
		default:
		}
		h.Set(b)
		synctest.Wait()
		select {
		case <-lost:
		default:
			t.Fatal("a slot of a replaced World was not lost")
		}
		if err := release(ctx); err != nil {
			t.Fatal(err)
		}
		// The slot went back: another holder of a's semaphore gets it.
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		l, err := a.Acquire(actx, "job", 1)
		if err != nil {
			t.Fatalf("the released slot: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// A released slot's goroutine has stopped: the bubble would leak it.
		_, _, release2, err := h.AcquireSlot(ctx, "job", 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := release2(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A wait for a slot on a World that is replaced moves to the new World: the
// old cluster's queue, which this host no longer takes part in, would
// otherwise hold it until its context ends.
func TestHandleSlotWaitMovesToTheNewWorld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := twoWorlds(t)
		other, err := a.Acquire(t.Context(), "job", 1) // a's only slot, held elsewhere
		if err != nil {
			t.Fatal(err)
		}
		defer other.Release(context.WithoutCancel(t.Context()))
		h := world.NewHandle()
		h.Set(a)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		type got struct {
			token   uint64
			release func(context.Context) error
			err     error
		}
		acquired := make(chan got, 1)
		go func() {
			token, _, release, err := h.AcquireSlot(ctx, "job", 1)
			acquired <- got{token, release, err}
		}()
		synctest.Wait()
		h.Set(b)
		g := <-acquired
		if g.err != nil {
			t.Fatalf("a wait on a replaced World: %v, want a slot of the new one", g.err)
		}
		short, cancelShort := context.WithTimeout(t.Context(), time.Second)
		defer cancelShort()
		if l, err := b.Acquire(short, "job", 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("another holder of the new World's semaphore got (%v, %v), want to wait: the slot is the handle's", l, err)
		}
		if err := g.release(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// Releasing a slot of a World that was replaced and whose cluster node has
// stopped since succeeds: nothing this host can do would give the slot
// back (that cluster frees it when it declares this host gone), and an
// error would have the engine retry it for as long as it runs.
func TestHandleReleaseOfAReplacedWorldsSlotDoesNotFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, as := worlds(t, 1)
		_, bs := worlds(t, 1)
		h := world.NewHandle()
		h.Set(as[0])
		ctx := t.Context()
		_, lost, release, err := h.AcquireSlot(ctx, "job", 1)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(bs[0])
		<-lost
		ca.Close() // the old cluster side stops
		if err := release(ctx); err != nil {
			t.Errorf("releasing a slot of a replaced World whose node stopped: %v, want nil", err)
		}
	})
}
