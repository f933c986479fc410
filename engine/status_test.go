package engine_test

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
)

// statusOf returns the status of the named fake in the engine's snapshot.
func statusOf(t *testing.T, r *run, name string) engine.ResourceStatus {
	t.Helper()
	for _, st := range r.eng.Snapshot().Resources {
		if st.ID == id(name) {
			return st
		}
	}
	t.Fatalf("%s is not in the snapshot %+v", name, r.eng.Snapshot())
	return engine.ResourceStatus{}
}

// A failing resource shows failed with its error, waiting for its retry
// while retries are left, and the retries left count down to zero.
func TestSnapshotFailingResourceCountsRetriesDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newFake(newRecorder(), "a")
		a.result = fails
		r := start(t, graphOfVertices(t, withMeta(engine.Meta{Retry: 2, Delay: time.Second}, a)),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		for _, want := range []struct {
			left    int
			waiting string
		}{{1, engine.WaitRetry}, {0, engine.WaitRetry}, {0, ""}} {
			st := statusOf(t, r, "a")
			if st.State != engine.StateFailed || st.Error != errScripted.Error() ||
				st.RetriesLeft != want.left || st.Waiting != want.waiting {
				t.Errorf("after %d runs: got %+v, want failed with %q, %d retries left, waiting %q",
					a.checks.Load(), st, errScripted, want.left, want.waiting)
			}
			advance(time.Second)
		}
		snap := r.eng.Snapshot()
		if !snap.Converged || snap.Counts.Failed != 1 || snap.Counts.Total != 1 || snap.Graph != "test" {
			t.Errorf("got %+v, want converged graph test with 1 of 1 failed", snap)
		}
	})
}

// A resource whose CheckApply blocks shows running from its start, its
// child waits for it, and the duration is recorded when it returns.
func TestSnapshotShowsRunningWhileCheckApplyBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.gate, a.result = make(chan struct{}), changes
		began := time.Now()
		r := start(t, graphOf(t, []*fake{a, b}, "a->b"), nil)
		synctest.Wait()
		if st := statusOf(t, r, "a"); st.State != engine.StateRunning || !st.LastStart.Equal(began) {
			t.Errorf("a while its CheckApply blocks: got %+v, want running since %v", st, began)
		}
		if st := statusOf(t, r, "b"); st.State != engine.StateWaiting || st.Waiting != engine.WaitDependencies {
			t.Errorf("b under a running a: got %+v, want waiting for dependencies", st)
		}
		advance(5 * time.Second)
		close(a.gate)
		synctest.Wait()
		st := statusOf(t, r, "a")
		if st.State != engine.StateOK || st.LastDuration != 5*time.Second || !st.Changed || st.Changes != 1 {
			t.Errorf("a after its CheckApply: got %+v, want ok, changed once, took 5s", st)
		}
		if st := statusOf(t, r, "b"); st.State != engine.StateOK || st.Changed {
			t.Errorf("b after a: got %+v, want ok, unchanged", st)
		}
		if c := r.eng.Snapshot().Counts; c != (engine.Counts{Total: 2, OK: 2, Changed: 1}) {
			t.Errorf("counts: got %+v", c)
		}
	})
}

// Of two resources sharing a semaphore, the one whose CheckApply runs
// holds it and the other waits for it.
func TestSnapshotShowsSemaphoresHeldAndWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.gate, b.gate = make(chan struct{}), make(chan struct{})
		r := start(t, graphOfVertices(t, withMeta(engine.Meta{Sema: []string{"x"}}, a, b)), nil)
		synctest.Wait()
		sa, sb := statusOf(t, r, "a"), statusOf(t, r, "b")
		if sb.State == engine.StateRunning {
			sa, sb = sb, sa
		}
		if sa.State != engine.StateRunning || !slices.Equal(sa.SemaHeld, []string{"x"}) || sa.SemaWaiting != nil {
			t.Errorf("the holder: got %+v, want running holding x", sa)
		}
		if sb.State != engine.StateWaiting || sb.Waiting != engine.WaitSemaphores ||
			!slices.Equal(sb.SemaWaiting, []string{"x"}) || sb.SemaHeld != nil {
			t.Errorf("the other: got %+v, want waiting for semaphore x", sb)
		}
		close(a.gate)
		close(b.gate)
		synctest.Wait()
		for _, name := range []string{"a", "b"} {
			if st := statusOf(t, r, name); st.State != engine.StateOK || st.SemaHeld != nil || st.SemaWaiting != nil {
				t.Errorf("%s at the end: got %+v, want ok with no semaphore", name, st)
			}
		}
	})
}

// A graph swap keeps the status of the resources it keeps, starts the
// changed and added ones afresh, and drops the removed ones.
func TestSnapshotSwapKeepsUnchangedResourcesStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		a.result = changes
		r := start(t, graphOf(t, []*fake{a, b, c}), nil)
		synctest.Wait()
		before := statusOf(t, r, "a")
		advance(time.Minute)
		b2, d := newFake(rec, "b"), newFake(rec, "d")
		b2.Param, b2.gate = "v2", make(chan struct{})
		r.graphs <- graphOf(t, []*fake{a, b2, d})
		synctest.Wait()
		if st := statusOf(t, r, "a"); st.State != engine.StateOK || !st.LastStart.Equal(before.LastStart) ||
			st.Changes != 1 || !st.Changed {
			t.Errorf("kept a: got %+v, want its status before the swap %+v", st, before)
		}
		if st := statusOf(t, r, "b"); st.State != engine.StateRunning || !st.LastStart.Equal(before.LastStart.Add(time.Minute)) {
			t.Errorf("replaced b: got %+v, want running since the swap", st)
		}
		var names []string
		for _, st := range r.eng.Snapshot().Resources {
			names = append(names, st.ID.Name)
		}
		if !slices.Equal(names, []string{"a", "b", "d"}) {
			t.Errorf("resources after the swap: %v, want a b d", names)
		}
		checks(t, map[*fake]int{a: 1})
		close(b2.gate)
	})
}

// observer records the CheckApply and swap events it is told about.
type observer struct {
	mu     sync.Mutex
	events []engine.ApplyEvent
	swaps  []engine.SwapEvent
}

func (o *observer) GraphSwapped(ev engine.SwapEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.swaps = append(o.swaps, ev)
}

func (o *observer) CheckApplyDone(ev engine.ApplyEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func (o *observer) of(name string) []engine.ApplyEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []engine.ApplyEvent
	for _, ev := range o.events {
		if ev.ID == id(name) {
			out = append(out, ev)
		}
	}
	return out
}

// The observer hears of every CheckApply once, with its outcome and how
// long it took.
func TestObserverCalledOncePerCheckApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		a.result, b.result = changes, fails
		c.gate = make(chan struct{})
		obs := &observer{}
		start(t, graphOfVertices(t, []engine.Vertex{vtx("a", a),
			{ID: id("b"), Res: b, Meta: engine.Meta{Retry: 1, Delay: time.Second}}, vtx("c", c)}),
			func(cfg *engineConfig) { cfg.Observer = obs })
		advance(3 * time.Second)
		close(c.gate)
		synctest.Wait()
		if evs := obs.of("a"); len(evs) != 1 || !evs[0].Changed || evs[0].Err != nil || evs[0].Noop {
			t.Errorf("a: got %+v, want one change", evs)
		}
		evs := obs.of("b")
		if len(evs) != 2 || int(b.checks.Load()) != 2 {
			t.Fatalf("b: got %d events for %d CheckApply calls, want 2", len(evs), b.checks.Load())
		}
		for _, ev := range evs {
			if !errors.Is(ev.Err, errScripted) || ev.Changed {
				t.Errorf("b: got %+v, want the scripted failure", ev)
			}
		}
		if evs := obs.of("c"); len(evs) != 1 || evs[0].Duration != 3*time.Second || evs[0].Changed {
			t.Errorf("c: got %+v, want one run of 3s that changed nothing", evs)
		}
	})
}

// OnConverged sees a snapshot that holds the outcome of every CheckApply
// that led to the convergence.
func TestSnapshotIsCurrentWhenConverged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result, b.result = changes, fails
		var eng atomic.Pointer[engine.Engine]
		var seen []engine.Counts
		r := start(t, nil, func(c *engineConfig) {
			c.ConvergedTimeout = 0
			c.OnConverged = func(st engine.Status) {
				if st.Converged {
					seen = append(seen, eng.Load().Snapshot().Counts)
				}
			}
		})
		eng.Store(r.eng)
		r.graphs <- graphOf(t, []*fake{a, b}, "a->b")
		synctest.Wait()
		want := engine.Counts{Total: 2, OK: 1, Failed: 1, Changed: 1}
		if len(seen) != 1 || seen[0] != want {
			t.Errorf("counts seen when converged: %+v, want %+v", seen, want)
		}
	})
}

// The observer hears of every graph swapped in, the first included, with
// what the swap added, removed and kept.
func TestObserverHearsOfEveryGraphSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		obs := &observer{}
		r := start(t, graphOf(t, []*fake{a, b}), func(cfg *engineConfig) { cfg.Observer = obs })
		synctest.Wait()
		r.graphs <- graphOf(t, []*fake{a, c})
		synctest.Wait()
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if len(obs.swaps) != 2 {
			t.Fatalf("got %d swap events (%+v), want 2", len(obs.swaps), obs.swaps)
		}
		if first := obs.swaps[0]; first.Added != 2 || first.Removed != 0 || first.Kept != 0 {
			t.Errorf("first swap: got %+v, want 2 added", first)
		}
		if second := obs.swaps[1]; second.Added != 1 || second.Removed != 1 || second.Kept != 1 {
			t.Errorf("second swap: got %+v, want 1 added, 1 removed, 1 kept", second)
		}
	})
}

// Counts agrees with the snapshot's counts while a CheckApply runs holding
// a semaphore, another waits for it and a child waits for its parent, and
// once everything is done.
func TestCountsAgreeWithSnapshotCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		a.gate, b.gate, a.result = make(chan struct{}), make(chan struct{}), changes
		vs := append(withMeta(engine.Meta{Sema: []string{"x"}}, a, b), engine.Vertex{ID: id("c"), Res: c})
		r := start(t, graphOfVertices(t, vs, "a->c"), nil)
		synctest.Wait()
		want := engine.Counts{Total: 3, Running: 1, Waiting: 2}
		if got := r.eng.Counts(); got != want || r.eng.Snapshot().Counts != want {
			t.Errorf("while a or b runs: Counts %+v, snapshot %+v, want %+v", got, r.eng.Snapshot().Counts, want)
		}
		close(a.gate)
		close(b.gate)
		synctest.Wait()
		want = engine.Counts{Total: 3, OK: 3, Changed: 1}
		if got := r.eng.Counts(); got != want || r.eng.Snapshot().Counts != want {
			t.Errorf("at the end: Counts %+v, snapshot %+v, want %+v", got, r.eng.Snapshot().Counts, want)
		}
	})
}
