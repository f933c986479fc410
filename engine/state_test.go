package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
)

// A refresh delivered but not consumed when the agent stops is delivered
// after a restart.
func TestPendingRefreshSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		b.gate, b.ctxAware = make(chan struct{}), true // b is killed mid-run
		r := start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		r.cancel()
		r.eng.Abort()
		r.stop()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Fatalf("first run: b saw %v", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b") // a is in state now
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Errorf("after restart: b saw refreshes %v, want [true]", got)
		}
		b.event()
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true, false}) {
			t.Errorf("the restored refresh was delivered more than once: %v", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// Consumed: a third start delivers nothing.
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{false}) {
			t.Errorf("third run: b saw %v, want [false]", got)
		}
	})
}

// If the agent dies while a vertex with notify edges is in its CheckApply,
// that CheckApply may have changed something: after a restart its children
// get a refresh even though the vertex is now in state.
func TestInflightParentRefreshesChildrenAfterRestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.gate = make(chan struct{}) // ignores cancellation: the agent gives up on it
		r := start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		r.cancel()
		r.eng.Abort()
		r.stop()
		close(a.gate)
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Errorf("b saw refreshes %v, want [true]", got)
		}
	})
}

// A corrupt state file is moved aside; the engine starts afresh.
func TestCorruptStateFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "engine-state.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		start(t, graphOf(t, []*fake{a}), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		checks(t, map[*fake]int{a: 1})
	})
	if _, err := os.Stat(p + ".corrupt"); err != nil {
		t.Errorf("corrupt file not moved aside: %v", err)
	}
}

// A refresh pending on a vertex that leaves the graph goes with it: added
// back later, the vertex does not get it.
func TestRefreshOfAVertexThatLeftTheGraphIsForgotten(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		b.hold = make(chan struct{}) // never running, so its refresh stays pending
		r := start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 0})
		r.graphs <- graphOf(t, []*fake{a})
		synctest.Wait()
		b2 := newFake(rec, "b")
		r.graphs <- graphOf(t, []*fake{a, b2}, "a=>b")
		synctest.Wait()
		if got := b2.refreshLog(); !slices.Equal(got, []bool{false}) {
			t.Errorf("b added back saw refreshes %v, want [false]", got)
		}
	})
}
