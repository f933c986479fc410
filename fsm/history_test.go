package fsm

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

func TestEventsPaging(t *testing.T) {
	h := newHarness(t, Options{})
	h.apply(put("a/1", "1"), put("a/2", "1"), put("b/1", "1")) // rev 1: 3 events
	h.apply(put("b/2", "2"))                                   // rev 2
	h.apply(put("a/1", "3"), put("a/3", "3"))                  // rev 3
	h.apply(put("b/3", "4"))                                   // rev 4

	// max 1: the whole of revision 1, then stop.
	evs, through, err := h.f.Events(0, "", 1)
	if err != nil || len(evs) != 3 || through != 1 {
		t.Fatalf("Events(0, 1) = %q, %d, %v; want revision 1 whole, through 1", describe(evs), through, err)
	}
	evs, through, _ = h.f.Events(through, "", 2)
	if got, want := describe(evs), []string{"put b/2=2@2", "put a/1=3@3", "put a/3=3@3"}; !slices.Equal(got, want) || through != 3 {
		t.Fatalf("Events(1, 2) = %q through %d, want %q through 3", got, through, want)
	}
	evs, through, _ = h.f.Events(through, "", 2)
	if len(evs) != 1 || through != 4 {
		t.Fatalf("Events(3, 2) = %q through %d", describe(evs), through)
	}
	evs, through, _ = h.f.Events(through, "", 2)
	if len(evs) != 0 || through != 4 {
		t.Fatalf("Events(4) = %q through %d, want nothing through 4", describe(evs), through)
	}

	// Prefix: through reaches Rev when nothing more matches.
	evs, through, _ = h.f.Events(0, "a/", 0)
	if got, want := describe(evs), []string{"put a/1=1@1", "put a/2=1@1", "put a/1=3@3", "put a/3=3@3"}; !slices.Equal(got, want) || through != 4 {
		t.Fatalf("Events(0, a/) = %q through %d, want %q through 4", got, through, want)
	}
	evs, through, _ = h.f.Events(0, "a/", 2)
	if len(evs) != 2 || through != 1 {
		t.Fatalf("Events(0, a/, 2) = %q through %d, want revision 1", describe(evs), through)
	}
	evs, through, _ = h.f.Events(through, "a/", 1)
	if len(evs) != 2 || through != 3 {
		t.Fatalf("Events(1, a/, 1) = %q through %d, want revision 3, through 3", describe(evs), through)
	}
	evs, through, _ = h.f.Events(through, "a/", 1)
	if len(evs) != 0 || through != 4 {
		t.Fatalf("Events(3, a/, 1) = %q through %d, want nothing through 4", describe(evs), through)
	}
}

func TestEventsCompacted(t *testing.T) {
	h := newHarness(t, Options{History: 3})
	h.apply(put("a", "1"), put("b", "1")) // rev 1: 2 events
	h.apply(put("a", "2"))                // rev 2
	if evs := h.events(0, ""); len(evs) != 3 {
		t.Fatalf("history holds %d events, want 3", len(evs))
	}
	h.apply(put("a", "3")) // rev 3: drops the whole of revision 1
	_, _, err := h.f.Events(0, "", 0)
	var ce *CompactedError
	if !errors.As(err, &ce) || ce.Current != 3 || !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(0) error = %v, want CompactedError{3}", err)
	}
	if evs := h.events(1, ""); len(evs) != 2 {
		t.Fatalf("Events(1) = %q, want revisions 2 and 3", describe(evs))
	}
	// A revision larger than the history is not kept at all.
	h.apply(put("c", "1"), put("d", "1"), put("e", "1"), put("f", "1")) // rev 4
	if _, _, err := h.f.Events(3, "", 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(3) error = %v, want compacted", err)
	}
	if evs := h.events(4, ""); len(evs) != 0 {
		t.Fatalf("Events(4) = %q", describe(evs))
	}
	h.apply(put("g", "1"))
	if evs := h.events(4, ""); len(evs) != 1 {
		t.Fatalf("Events(4) = %q, want revision 5", describe(evs))
	}
	// After is never beyond Rev.
	if _, _, err := h.f.Events(99, "", 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(99) error = %v, want compacted", err)
	}
}

func TestHistoryStaysBounded(t *testing.T) {
	h := newHarness(t, Options{History: 10})
	for i := range 1000 {
		h.apply(put("k", itoa(uint64(i))), put("l", itoa(uint64(i))))
	}
	if n := len(h.f.hist.kept()); n > 10 {
		t.Fatalf("history keeps %d events", n)
	}
	if c := cap(h.f.hist.evs); c > 64 {
		t.Fatalf("history slice grew to %d", c)
	}
	if evs := h.events(995, ""); len(evs) != 10 {
		t.Fatalf("Events(995) = %d events, want 10", len(evs))
	}
}

func TestRestoreCompactsWatchers(t *testing.T) {
	src := newHarness(t, Options{})
	for i := range 5 {
		src.apply(put("k", itoa(uint64(i))))
	}
	snap := src.snapshot()

	h := newHarness(t, Options{})
	h.apply(put("x", "1"))
	h.apply(put("x", "2"))
	changed := h.f.Changed()
	if err := h.f.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not close Changed")
	}
	for _, after := range []uint64{0, 2, 4} {
		_, _, err := h.f.Events(after, "", 0)
		var ce *CompactedError
		if !errors.As(err, &ce) || ce.Current != 5 {
			t.Fatalf("Events(%d) after Restore: %v, want CompactedError{5}", after, err)
		}
	}
	if evs, through, err := h.f.Events(5, "", 0); err != nil || len(evs) != 0 || through != 5 {
		t.Fatalf("Events(5) = %v, %d, %v", evs, through, err)
	}
	if h.f.Applied() != 5 || h.value("x") != "<absent>" || h.value("k") != "4" {
		t.Fatalf("restored: Applied %d, x %q, k %q", h.f.Applied(), h.value("x"), h.value("k"))
	}
	// Indexes carry on from the snapshot.
	if _, err := h.f.Apply(5, mustEncode(t, put("y", "1"))); err == nil {
		t.Fatal("Apply at the snapshot's index succeeded")
	}
	h.index = 5
	h.ok(put("y", "1"))
	if evs := h.events(5, ""); len(evs) != 1 || evs[0].KV.ModRev != 6 {
		t.Fatalf("events after restore = %q", describe(evs))
	}
}

func TestChangedWakesOnRevisionMoves(t *testing.T) {
	h := newHarness(t, Options{})
	ch := h.f.Changed()
	if ch != h.f.Changed() {
		t.Fatal("Changed returned a new channel with no change between")
	}
	h.ok(del("missing"))
	select {
	case <-ch:
		t.Fatal("Changed fired for a no-op")
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ch
	}()
	h.ok(put("a", "1"))
	<-done
	if h.f.Changed() == ch {
		t.Fatal("Changed returned a closed channel")
	}
}

func TestWaitApplied(t *testing.T) {
	h := newHarness(t, Options{})
	errc := make(chan error, 1)
	go func() { errc <- h.f.WaitApplied(context.Background(), 3) }()
	h.apply(put("a", "1"))
	h.apply(put("a", "1")) // no-op entries count too
	select {
	case err := <-errc:
		t.Fatalf("WaitApplied(3) returned %v at index 2", err)
	default:
	}
	h.index++
	if _, err := h.f.Apply(h.index, nil); err != nil { // an empty entry
		t.Fatalf("Apply(nil): %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("WaitApplied(3) = %v", err)
	}
	if err := h.f.WaitApplied(context.Background(), 2); err != nil {
		t.Fatalf("WaitApplied(2) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- h.f.WaitApplied(ctx, 100) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied after cancel = %v", err)
	}
}

func TestApplyBadEntries(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(put("a", "1"))
	ch := h.f.Changed()
	before := h.snapshot()
	// An entry that does not decode: an error, no change, Applied moves.
	if res, err := h.f.Apply(2, []byte{batchFormat, 0xc1}); err == nil || res != nil {
		t.Fatalf("Apply(garbage) = %v, %v; want an error", res, err)
	}
	if h.f.Applied() != 2 || h.f.Rev() != 1 || !bytes.Equal(stateOf(t, before), stateOf(t, h.snapshot())) {
		t.Fatalf("after a bad entry: Applied %d, Rev %d", h.f.Applied(), h.f.Rev())
	}
	select {
	case <-ch:
		t.Fatal("a bad entry fired Changed")
	default:
	}
	// Indexes only grow.
	for _, index := range []uint64{0, 1, 2} {
		if _, err := h.f.Apply(index, mustEncode(t, put("b", "1"))); err == nil {
			t.Fatalf("Apply(%d) after 2 succeeded", index)
		}
	}
	if h.f.Applied() != 2 || h.value("b") != "<absent>" {
		t.Fatal("a stale index changed the state")
	}
}

func mustEncode(t testing.TB, cmds ...Command) []byte {
	t.Helper()
	data, err := EncodeBatch(cmds)
	if err != nil {
		t.Fatalf("EncodeBatch: %v", err)
	}
	return data
}
