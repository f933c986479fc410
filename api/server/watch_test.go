package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// nextEvent returns the watch's next event, failing the test on an error
// or after a while.
func nextEvent(t *testing.T, w *api.Watch) api.WatchEvent {
	t.Helper()
	type result struct {
		ev  api.WatchEvent
		err error
	}
	ch := make(chan result, 1)
	go func() {
		for ev, err := range w.Events() {
			ch <- result{ev, err}
			return
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("watch: %v", r.err)
		}
		return r.ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	panic("unreachable")
}

// describe renders an event's changes as "put k=v@rev" and "delete k@rev".
func describe(ev api.WatchEvent) string {
	var parts []string
	for _, e := range ev.Events {
		if e.Type == api.EventPut {
			parts = append(parts, fmt.Sprintf("put %s=%s@%d", e.KV.Key, e.KV.Value, e.KV.ModRev))
		} else {
			parts = append(parts, fmt.Sprintf("delete %s@%d", e.KV.Key, e.KV.ModRev))
		}
	}
	return strings.Join(parts, " ")
}

// A watch reports every change under its prefix after it started, in
// order, and nothing else.
func TestWatchStreamsChangesInOrder(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	if _, err := f.client.Put(ctx, "app/old", []byte("before the watch")); err != nil {
		t.Fatal(err)
	}
	w, err := f.client.Watch(ctx, "app/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Rev() != f.world.Rev() {
		t.Errorf("watch started after rev %d, want the current %d", w.Rev(), f.world.Rev())
	}
	r1, _ := f.client.Put(ctx, "app/a", []byte("1"))
	f.client.Put(ctx, "elsewhere", []byte("x"))
	r2, _ := f.client.Put(ctx, "app/a", []byte("2"))
	r3, _ := f.client.Delete(ctx, "app/a")
	want := []string{fmt.Sprintf("put app/a=1@%d", r1), fmt.Sprintf("put app/a=2@%d", r2), fmt.Sprintf("delete app/a@%d", r3)}
	var got []string
	for len(got) < len(want) {
		ev := nextEvent(t, w)
		if ev.Resync || ev.Start {
			t.Fatalf("unexpected %+v", ev)
		}
		for _, e := range ev.Events {
			got = append(got, describe(api.WatchEvent{Events: []api.Event{e}}))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

// A watch from a revision reports what changed after it, so list-then-
// watch misses nothing.
func TestWatchFromRevisionMissesNothing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	f.client.Put(ctx, "k/a", []byte("1"))
	_, rev, err := f.client.List(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := f.client.Put(ctx, "k/b", []byte("2")) // between the list and the watch
	w, err := f.client.Watch(ctx, "k/", rev)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Rev() != rev {
		t.Errorf("watch started after %d, want %d", w.Rev(), rev)
	}
	if got, want := describe(nextEvent(t, w)), fmt.Sprintf("put k/b=2@%d", r); got != want {
		t.Errorf("first event %q, want %q", got, want)
	}
}

// A watch from a revision whose events are no longer kept starts with a
// resync carrying the keys.
func TestWatchResyncsWhenHistoryIsGone(t *testing.T) {
	f := newFixture(t, fixtureOpts{history: 1})
	ctx := t.Context()
	first, _ := f.client.Put(ctx, "k/a", []byte("1"))
	f.client.Put(ctx, "k/b", []byte("2"))
	f.client.Put(ctx, "k/c", []byte("3"))
	w, err := f.client.Watch(ctx, "k/", first)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ev := nextEvent(t, w)
	if !ev.Resync || len(ev.State) != 3 || ev.Rev != f.world.Rev() {
		t.Fatalf("got %+v, want a resync with 3 keys at %d", ev, f.world.Rev())
	}
	r, _ := f.client.Put(ctx, "k/d", []byte("4"))
	if got, want := describe(nextEvent(t, w)), fmt.Sprintf("put k/d=4@%d", r); got != want {
		t.Errorf("after the resync: %q, want %q", got, want)
	}
}

// When the agent stops, a watch ends with ErrWatchEnded saying so, and
// Serve returns promptly although the stream was open.
func TestWatchEndsWhenServerStops(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	w, err := f.client.Watch(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Serve took %v to stop with a watch open", d)
	}
	for _, err := range w.Events() {
		if !errors.Is(err, api.ErrWatchEnded) || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("watch ended with %v, want ErrWatchEnded saying the agent is stopping", err)
		}
		break
	}
}

// watchSpy records the contexts the server watches with.
type watchSpy struct {
	Store
	mu   sync.Mutex
	ctxs []context.Context
}

func (s *watchSpy) Watch(ctx context.Context, prefix string, from uint64) <-chan world.WatchEvent {
	s.mu.Lock()
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	return s.Store.Watch(ctx, prefix, from)
}

// When the client goes away, the server stops the World's watch; the
// client's own Events ends with its context's error.
func TestWatchEndsWhenClientGoesAway(t *testing.T) {
	spy := &watchSpy{}
	f := newFixture(t, fixtureOpts{store: func(s Store) Store { spy.Store = s; return spy }})
	ctx, cancel := context.WithCancel(t.Context())
	w, err := f.client.Watch(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	spy.mu.Lock()
	serverCtx := spy.ctxs[0]
	spy.mu.Unlock()
	cancel()
	for _, err := range w.Events() {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("watch ended with %v, want context.Canceled", err)
		}
		break
	}
	select {
	case <-serverCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server's watch still runs 10s after the client went away")
	}
}

// A watch from a revision the cluster has not reached is refused, naming
// the current revision, rather than accepted and then resynced backwards.
func TestWatchFromFutureRevisionIs400(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	rev, err := f.client.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Watch(ctx, "", rev+100)
	want := fmt.Sprintf("required revision %d is a future revision: the current revision is %d", rev+100, rev)
	if api.StatusCode(err) != 400 || !strings.Contains(err.Error(), want) {
		t.Errorf("watch from rev %d at rev %d: %v (status %d), want 400 %q", rev+100, rev, err, api.StatusCode(err), want)
	}
	w, err := f.client.Watch(ctx, "", rev)
	if err != nil {
		t.Fatalf("watch from the current revision: %v", err)
	}
	w.Close()
}

// laggingStore is a Store whose local copy reports revision held until a
// linearizable read brings it up to date, as a follower's copy that has
// not applied the latest writes yet.
type laggingStore struct {
	Store
	held atomic.Uint64 // the revision reported while lagging; 0 once caught up
}

func (s *laggingStore) Get(ctx context.Context, key string, opts ...world.ReadOption) (fsm.KV, bool, error) {
	kv, ok, err := s.Store.Get(ctx, key, opts...)
	if err == nil && len(opts) > 0 {
		s.held.Store(0)
	}
	return kv, ok, err
}

func (s *laggingStore) Rev() uint64 {
	if r := s.held.Load(); r != 0 {
		return r
	}
	return s.Store.Rev()
}

// A revision ahead of the local copy only because the copy lags (another
// node just returned it) is accepted once the copy has caught up.
func TestWatchFromRevisionAheadOfLaggingCopyIsAccepted(t *testing.T) {
	store := &laggingStore{}
	f := newFixture(t, fixtureOpts{store: func(s Store) Store { store.Store = s; return store }})
	ctx := t.Context()
	first, err := f.client.Put(ctx, "k/a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.client.Put(ctx, "k/b", []byte("2"))
	if err != nil {
		t.Fatal(err)
	}
	store.held.Store(first)
	w, err := f.client.Watch(ctx, "k/", second)
	if err != nil {
		t.Fatalf("watch from rev %d with the local copy at %d: %v", second, first, err)
	}
	defer w.Close()
	if w.Rev() != second || store.held.Load() != 0 {
		t.Errorf("watch started after %d (local copy caught up: %t), want %d", w.Rev(), store.held.Load() == 0, second)
	}
	third, _ := f.client.Put(ctx, "k/c", []byte("3"))
	if got, want := describe(nextEvent(t, w)), fmt.Sprintf("put k/c=3@%d", third); got != want {
		t.Errorf("first event %q, want %q", got, want)
	}
}

// Putting a key's current value again changes nothing: no new revision,
// no watch event.
func TestPutOfUnchangedValueMakesNoRevisionNorEvent(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	rev, err := f.client.Put(ctx, "k", []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.client.Watch(ctx, "", rev)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	again, err := f.client.Put(ctx, "k", []byte("same"))
	if err != nil || again != rev || f.world.Rev() != rev {
		t.Fatalf("put of the same value: rev %d (%v), store at %d; want %d", again, err, f.world.Rev(), rev)
	}
	if kv, _, _ := f.client.Get(ctx, "k"); kv.Version != 1 || kv.ModRev != rev {
		t.Errorf("after the same value again: version %d, mod_rev %d; want 1 and %d", kv.Version, kv.ModRev, rev)
	}
	// Events come in order: the first one is the next real change.
	next, _ := f.client.Put(ctx, "k", []byte("changed"))
	if got, want := describe(nextEvent(t, w)), fmt.Sprintf("put k=changed@%d", next); got != want {
		t.Errorf("first event after the unchanged put: %q, want %q", got, want)
	}
}
