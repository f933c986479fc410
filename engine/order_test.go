package engine_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
)

// Guarantee 1: a chain runs strictly in edge order.
func TestChainRunsInEdgeOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		for _, f := range []*fake{a, b, c} {
			f.result = changes
		}
		start(t, graphOf(t, []*fake{c, b, a}, "a->b", "b->c"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1, c: 1})
		before(t, rec, "end a", "start b")
		before(t, rec, "end b", "start c")
	})
}

// Guarantee 1: fan-in waits for every parent.
func TestFanInWaitsForAllParents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		p1, p2, p3, child := newFake(rec, "p1"), newFake(rec, "p2"), newFake(rec, "p3"), newFake(rec, "child")
		p2.gate = make(chan struct{})
		start(t, graphOf(t, []*fake{p1, p2, p3, child}, "p1->child", "p2->child", "p3->child"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{p1: 1, p2: 1, p3: 1, child: 0})
		if !rec.isRunning("p2") {
			t.Fatal("p2 should be running, held by its gate")
		}
		close(p2.gate)
		synctest.Wait()
		checks(t, map[*fake]int{child: 1})
		for _, p := range []string{"end p1", "end p2", "end p3"} {
			before(t, rec, p, "start child")
		}
	})
}

// Guarantee 1: independent vertices run at the same time.
func TestIndependentBranchesRunInParallel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		gate := make(chan struct{})
		var fs []*fake
		for _, n := range []string{"a", "b", "c"} {
			f := newFake(rec, n)
			f.gate = gate
			fs = append(fs, f)
		}
		start(t, graphOf(t, fs), nil)
		synctest.Wait()
		if rec.maxPar != 3 {
			t.Errorf("got %d CheckApply calls at once, want 3", rec.maxPar)
		}
		close(gate)
	})
}

// Guarantee 1: an event on an ancestor holds back a descendant's event until
// the ancestor has run.
func TestDescendantWaitsForDirtyAncestor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a->b"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1})

		a.gate = make(chan struct{}) // safe: a is idle
		a.event()
		synctest.Wait()
		b.event()
		synctest.Wait()
		checks(t, map[*fake]int{a: 2, b: 1})
		close(a.gate)
		synctest.Wait()
		checks(t, map[*fake]int{a: 2, b: 2})
		before(t, rec, "end a", "start b")
	})
}

// Guarantee 1: an ancestor that gets an event while a descendant is running
// waits for the descendant to finish instead of changing state under it.
func TestAncestorWaitsForRunningDescendant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		start(t, graphOf(t, []*fake{a, b, c}, "a->b", "b->c"), nil)
		synctest.Wait()

		c.gate = make(chan struct{})
		c.event()
		synctest.Wait()
		if !rec.isRunning("c") {
			t.Fatal("c should be running")
		}
		a.event()
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, c: 2})
		close(c.gate)
		synctest.Wait()
		checks(t, map[*fake]int{a: 2, b: 1, c: 2})
	})
}

// Guarantee 2: no CheckApply before the resource's Watch is running, and its
// descendants wait too.
func TestNoCheckApplyBeforeWatchStartup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, other := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "other")
		a.hold = make(chan struct{})
		start(t, graphOf(t, []*fake{a, b, other}, "a->b"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 0, b: 0, other: 1})
		advance(hour)
		checks(t, map[*fake]int{a: 0, b: 0})
		close(a.hold)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1})
	})
}

// Guarantee 3: an event during CheckApply causes exactly one more.
func TestEventDuringCheckApplyNotSwallowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.gate = make(chan struct{}, 10)
		start(t, graphOf(t, []*fake{a}), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1})
		a.event()
		synctest.Wait()
		a.gate <- struct{}{}
		synctest.Wait()
		checks(t, map[*fake]int{a: 2})
		a.gate <- struct{}{}
		synctest.Wait()
		checks(t, map[*fake]int{a: 2})
	})
}

// Guarantee 3: many events during one CheckApply coalesce into one more.
func TestEventsDuringCheckApplyCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.gate = make(chan struct{}, 10)
		start(t, graphOf(t, []*fake{a}), nil)
		synctest.Wait()
		for range 50 {
			a.event()
		}
		synctest.Wait()
		a.gate <- struct{}{}
		a.gate <- struct{}{}
		synctest.Wait()
		checks(t, map[*fake]int{a: 2})
	})
}

// Guarantee 4: with no event or refresh a vertex is not run again, and an
// upstream change without notify does not re-run a child.
func TestStateCacheSkipsUnchangedVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		start(t, graphOf(t, []*fake{a, b}, "a->b"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1})
		advance(hour)
		checks(t, map[*fake]int{a: 1, b: 1})

		a.event() // a changes something again; b is not notified
		synctest.Wait()
		checks(t, map[*fake]int{a: 2, b: 1})

		b.event()
		synctest.Wait()
		checks(t, map[*fake]int{a: 2, b: 2})
	})
}

// Guarantee 4: a vertex already in state lets its descendants proceed.
func TestInStateVertexLetsDescendantsProceed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, c := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c")
		start(t, graphOf(t, []*fake{a, b, c}, "a->b", "b->c"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1, c: 1})
		before(t, rec, "end a", "start b")
		before(t, rec, "end b", "start c")
	})
}

// Guarantee 5: descendants of a failed vertex do not run; independent
// branches do.
func TestFailureIsolatesDescendants(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		bad, child, grandchild, other := newFake(rec, "bad"), newFake(rec, "child"), newFake(rec, "grandchild"), newFake(rec, "other")
		bad.result = fails
		start(t, graphOf(t, []*fake{bad, child, grandchild, other}, "bad->child", "child->grandchild"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{bad: 1, child: 0, grandchild: 0, other: 1})

		child.event() // still held back by its failed parent
		synctest.Wait()
		checks(t, map[*fake]int{child: 0})

		bad.result = nil // fixed; a new event lets it try again
		bad.event()
		synctest.Wait()
		checks(t, map[*fake]int{bad: 2, child: 1, grandchild: 1})
	})
}

// A resource that panics fails its vertex instead of the agent.
func TestPanicInCheckApplyFailsVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = func(int) (bool, error) { panic("boom") }
		r := start(t, graphOf(t, []*fake{a, b}, "a->b"), func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 0})
		st, ok := r.lastStatus()
		if !ok || !st.Converged || len(st.Failed) != 1 || st.Failed[0] != id("a") {
			t.Errorf("got status %+v, want converged with a failed", st)
		}
	})
}

// A Watch that fails at start, before Running, fails its vertex: neither
// its CheckApply nor its descendants' ever run.
func TestWatchErrorFailsVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, other := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "other")
		a.watchErr = errScripted
		r := start(t, graphOf(t, []*fake{a, b, other}, "a->b"), func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		checks(t, map[*fake]int{a: 0, b: 0, other: 1})
		st, ok := r.lastStatus()
		if !ok || !st.Converged || len(st.Failed) != 1 || st.Failed[0] != id("a") {
			t.Errorf("got status %+v, want converged with a failed", st)
		}
	})
}

// A Watch that fails after Running fails its vertex from then on: what ran
// while it watched (its own CheckApply and its descendants') stays done,
// and its descendants do not run again, even on an event of their own.
func TestWatchFailingAfterRunningHoldsBackLaterRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.failWatch = make(chan error)
		r := start(t, graphOf(t, []*fake{a, b}, "a->b"), func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1})

		a.failWatch <- errScripted
		synctest.Wait()
		b.event()
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1})
		st, ok := r.lastStatus()
		if !ok || !st.Converged || len(st.Failed) != 1 || st.Failed[0] != id("a") {
			t.Errorf("got status %+v, want converged with a failed", st)
		}
	})
}

// A Watch failure the engine has been told of holds back the descendants
// even when the parent's successful CheckApply reaches the engine at the
// same moment. The engine is stalled (in a log record of "other") while
// a's Watch fails and a's CheckApply returns, so that both wait for it at
// once; it takes either first, so the bubble is run 20 times.
func TestWatchFailureSeenWithParentResultHoldsBackChild(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			rec := newRecorder()
			a, b, other := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "other")
			a.failWatch = make(chan error)
			a.gate, other.gate = make(chan struct{}), make(chan struct{})
			stall := stallLog{resource: id("other").String(), release: make(chan struct{})}
			start(t, graphOf(t, []*fake{a, b, other}, "a->b"), func(c *engineConfig) {
				c.Logger = slog.New(stall)
			})
			synctest.Wait()
			close(other.gate) // the engine stalls handling other's result
			synctest.Wait()
			close(a.gate)
			a.failWatch <- errScripted
			synctest.Wait()
			close(stall.release)
			synctest.Wait()
			checks(t, map[*fake]int{a: 1, b: 0, other: 1})
		})
		if t.Failed() {
			break
		}
	}
}

// stallLog is a slog.Handler that holds the goroutine logging "resource in
// state" for resource until release is closed, and drops every record.
type stallLog struct {
	resource string
	release  chan struct{}
}

func (h stallLog) Enabled(context.Context, slog.Level) bool { return true }

func (h stallLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "resource in state" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "resource" && a.Value.String() == h.resource {
			<-h.release
		}
		return true
	})
	return nil
}

func (h stallLog) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h stallLog) WithGroup(string) slog.Handler { return h }

// Config.Noop and Meta.Noop run CheckApply with apply false.
func TestNoopPassesApplyFalse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.result = changes
		start(t, graphOf(t, []*fake{a}), func(c *engineConfig) { c.Noop = true })
		synctest.Wait()
		if len(a.applies) != 1 || a.applies[0] {
			t.Errorf("got apply arguments %v, want [false]", a.applies)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		g := graphOf(t, []*fake{b})
		if err := g.AddVertex(engineVertex(a, true)); err != nil {
			t.Fatal(err)
		}
		start(t, g, nil)
		synctest.Wait()
		if len(a.applies) != 1 || a.applies[0] {
			t.Errorf("a: got apply arguments %v, want [false]", a.applies)
		}
		if len(b.applies) != 1 || !b.applies[0] {
			t.Errorf("b: got apply arguments %v, want [true]", b.applies)
		}
	})
}
