package engine_test

import (
	"slices"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
)

// Issue 9, item 8: with noop, the converged status lists what a run
// without noop would change, so `graft run --noop --converged-exit` can say
// (and exit 2) when something would change.
func TestNoopConvergedStatusListsWhatWouldChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		drifted, fine := newFake(rec, "drifted"), newFake(rec, "fine")
		drifted.result = changes
		r := start(t, graphOf(t, []*fake{drifted, fine}), func(c *engineConfig) {
			c.Noop, c.ConvergedTimeout = true, 0
		})
		synctest.Wait()
		st, ok := r.lastStatus()
		if !ok || !st.Converged || !slices.Equal(st.WouldChange, []engine.ID{id("drifted")}) {
			t.Errorf("got %+v, want converged with fake[drifted] in WouldChange", st)
		}
		drifted.mu.Lock()
		got := slices.Clone(drifted.applies)
		drifted.mu.Unlock()
		if !slices.Equal(got, []bool{false}) {
			t.Errorf("noop ran CheckApply with apply %v", got)
		}
	})
}

// Without noop nothing is listed: what changed has changed.
func TestConvergedStatusListsNothingWithoutNoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.result = changes
		r := start(t, graphOf(t, []*fake{a}), func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		if st, ok := r.lastStatus(); !ok || !st.Converged || len(st.WouldChange) != 0 {
			t.Errorf("got %+v, want converged with nothing in WouldChange", st)
		}
	})
}

// Issue 9, item 8: "stopping: waiting for running resources" names them,
// instead of only counting them.
func TestStopLogNamesRunningResources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		logs := newLogCapture()
		slow, idle := newFake(rec, "slow"), newFake(rec, "idle")
		slow.gate = make(chan struct{})
		r := start(t, graphOf(t, []*fake{slow, idle}), func(c *engineConfig) { c.Logger = slogOf(logs) })
		synctest.Wait()
		r.cancel()
		synctest.Wait()
		got := logs.records("stopping: waiting for running resources")
		if len(got) != 1 || got[0].attrs["running"] != "fake[slow]" {
			t.Errorf("got %+v, want one record naming fake[slow]", got)
		}
		close(slow.gate)
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
