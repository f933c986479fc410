package world_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// The World and its Handle are what the engine asks for.
var (
	_ engine.World             = (*world.World)(nil)
	_ engine.ClusterSemaphores = (*world.World)(nil)
	_ engine.World             = (*world.Handle)(nil)
	_ engine.ClusterSemaphores = (*world.Handle)(nil)
)

// pending reports whether a notification waits on ch, a watch on w, once w
// has applied every write made so far and the bubble has settled.
func pending(t *testing.T, w *world.World, ch <-chan struct{}) bool {
	t.Helper()
	if err := w.Linearize(t.Context()); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("the watch channel closed")
		}
		return true
	default:
		return false
	}
}

// A key watch reports changes of its key only (not of longer keys it is a
// prefix of), not a put of the value already there, and a delete.
func TestKVWatchReportsChangesOfItsKeyOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		ch, err := ws[1].KVWatch(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if err := ws[0].KVPut(ctx, "app/port", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if pending(t, ws[1], ch) {
			t.Error("a change of app/port woke a watch of app")
		}
		if err := ws[0].KVPut(ctx, "app", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if !pending(t, ws[1], ch) {
			t.Fatal("a put of the key was not reported")
		}
		if v, ok, err := ws[1].KVGet(ctx, "app"); err != nil || !ok || string(v) != "v1" {
			t.Errorf("KVGet after the notification: %q %t %v", v, ok, err)
		}
		if err := ws[2].KVPut(ctx, "app", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if pending(t, ws[1], ch) {
			t.Error("a put of the value already there was reported")
		}
		if err := ws[2].KVDelete(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		if !pending(t, ws[1], ch) {
			t.Fatal("a delete was not reported")
		}
		if _, ok, err := ws[1].KVGet(ctx, "app"); ok || err != nil {
			t.Errorf("KVGet of a deleted key: %t %v", ok, err)
		}
		if err := ws[2].KVDelete(ctx, "app"); err != nil {
			t.Errorf("deleting a missing key: %v", err)
		}
	})
}

// Changes made while the watcher is busy coalesce into one notification,
// after which the watcher reads the last value; the channel closes when
// the context ends.
func TestKVWatchCoalescesAndClosesWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 1)
		ctx, cancel := context.WithCancel(t.Context())
		ch, err := ws[0].KVWatch(ctx, "n")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := ws[0].KVPut(t.Context(), "n", []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if !pending(t, ws[0], ch) {
			t.Fatal("20 puts were not reported")
		}
		if pending(t, ws[0], ch) {
			t.Error("20 puts made while the watcher was busy were reported more than once")
		}
		if v, _, _ := ws[0].KVGet(t.Context(), "n"); string(v) != "19" {
			t.Errorf("value after the notification: %q, want 19", v)
		}
		cancel()
		if _, ok := <-ch; ok {
			t.Error("the channel was not closed when the context ended")
		}
	})
}

// A per-host key holds one entry per host, each written by its host; a
// key with a slash is its own namespace; deleting removes only this
// host's entry; every host's watch sees every host's write.
func TestKVHostEntriesPerHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		const key = "svc/addr"
		var chs []<-chan struct{}
		for _, w := range ws {
			ch, err := w.KVHostWatch(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			chs = append(chs, ch)
		}
		for i, w := range ws {
			if err := w.KVHostPut(ctx, key, []byte(fmt.Sprintf("10.0.0.%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		// The escaped spelling of the key is another key.
		if err := ws[0].KVHostPut(ctx, "svc%2Faddr", []byte("other")); err != nil {
			t.Fatal(err)
		}
		for i, w := range ws {
			if !pending(t, w, chs[i]) {
				t.Errorf("%s's watch saw no write", w.Host())
			}
			vals, err := w.KVHostGet(ctx, key)
			if err != nil || len(vals) != 3 || string(vals["node0"]) != "10.0.0.0" || string(vals["node2"]) != "10.0.0.2" {
				t.Errorf("%s reads %q %v", w.Host(), vals, err)
			}
		}
		if err := ws[1].KVHostDelete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if !pending(t, ws[0], chs[0]) {
			t.Error("a delete of another host's entry was not reported")
		}
		vals, _ := ws[0].KVHostGet(ctx, key)
		if _, ok := vals["node1"]; ok || len(vals) != 2 {
			t.Errorf("after node1 deleted its entry: %q", vals)
		}
	})
}

// Keys graft keeps for itself are refused, and a per-host key too long to
// be a namespace is refused, naming the limit.
func TestKVRefusesReservedAndOverlongKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 1)
		ctx := t.Context()
		reserved := fsm.InternalPrefix + "x"
		if err := ws[0].KVPut(ctx, reserved, nil); !errors.Is(err, world.ErrReserved) {
			t.Errorf("KVPut of a reserved key: %v", err)
		}
		if _, _, err := ws[0].KVGet(ctx, reserved); !errors.Is(err, world.ErrReserved) {
			t.Errorf("KVGet of a reserved key: %v", err)
		}
		if _, err := ws[0].KVWatch(ctx, reserved); !errors.Is(err, world.ErrReserved) {
			t.Errorf("KVWatch of a reserved key: %v", err)
		}
		long := string(make([]byte, fsm.MaxNameSize))
		if err := ws[0].KVHostPut(ctx, long, nil); err == nil {
			t.Error("an overlong per-host key was accepted")
		}
		if ns, err := world.KVHostNamespace("a/b"); err != nil || ns != "kv:a%2Fb" {
			t.Errorf("namespace of a/b: %q %v", ns, err)
		}
	})
}

// KVSwap writes only if the key still holds what the caller read: a value,
// or nothing; an empty value is not nothing.
func TestKVSwapComparesWhatWasRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 2)
		ctx := t.Context()
		swap := func(w *world.World, old string, exists bool, value string, want bool) {
			t.Helper()
			ok, err := w.KVSwap(ctx, "k", []byte(old), exists, []byte(value))
			if err != nil || ok != want {
				t.Fatalf("KVSwap(%q, %t, %q): %t %v, want %t", old, exists, value, ok, err, want)
			}
		}
		swap(ws[0], "", true, "a", false) // absent is not empty
		swap(ws[0], "", false, "", true)  // absent: set to empty
		swap(ws[1], "", false, "b", false)
		swap(ws[1], "", true, "b", true)
		swap(ws[0], "", true, "c", false) // ws[0] read "" before ws[1] wrote b
		// A failed swap leaves this host's copy new enough to see why.
		if v, _, _ := ws[0].KVGet(ctx, "k"); string(v) != "b" {
			t.Errorf("after a failed swap the local copy holds %q, want b", v)
		}
	})
}
