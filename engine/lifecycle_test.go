package engine_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
)

// Guarantee 11: cancelling Run's context lets in-flight CheckApply calls
// finish (their contexts stay alive), starts nothing new, then stops every
// Watch and calls every Cleanup.
func TestGracefulShutdownFinishesInFlightWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b, other := newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "other")
		a.gate, a.ctxAware = make(chan struct{}), true
		r := start(t, graphOf(t, []*fake{a, b, other}, "a->b"), nil)
		synctest.Wait()

		r.cancel()
		synctest.Wait()
		select {
		case err := <-r.done:
			t.Fatalf("Run returned %v while a CheckApply was in flight", err)
		default:
		}
		close(a.gate)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		checks(t, map[*fake]int{a: 1, b: 0})
		if a.cleanups.Load() != 1 || b.cleanups.Load() != 1 || other.cleanups.Load() != 1 {
			t.Error("not every resource was cleaned up")
		}
		if a.watching.Load() || b.watching.Load() {
			t.Error("a Watch is still running after Run returned")
		}
		if slices.Contains(rec.log(), "start b") {
			t.Error("b started after shutdown began")
		}
	})
}

// Guarantee 11: Abort cancels running CheckApply contexts and Run returns
// ErrAborted.
func TestAbortCancelsRunningCheckApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.gate, a.ctxAware = make(chan struct{}), true
		r := start(t, graphOf(t, []*fake{a}), nil)
		synctest.Wait()
		r.cancel()
		synctest.Wait()
		r.eng.Abort()
		if err := r.stop(); !errors.Is(err, engine.ErrAborted) {
			t.Fatalf("Run: got %v, want ErrAborted", err)
		}
		if a.cleanups.Load() != 1 {
			t.Error("resource not cleaned up after abort")
		}
	})
}

// Guarantee 12: convergence is reported once nothing has changed for the
// timeout, measured from the last change.
func TestConvergedAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.result = changes
		t0 := time.Now()
		var at time.Time
		r := start(t, graphOf(t, []*fake{a}), func(c *engineConfig) {
			c.ConvergedTimeout = 10 * time.Second
			next := c.OnConverged
			c.OnConverged = func(s engine.Status) {
				if s.Converged {
					at = time.Now()
				}
				next(s)
			}
		})
		advance(9 * time.Second)
		if _, ok := r.lastStatus(); ok {
			t.Fatal("converged before the timeout")
		}
		advance(2 * time.Second)
		st, ok := r.lastStatus()
		if !ok || !st.Converged {
			t.Fatal("not converged after the timeout")
		}
		if got := at.Sub(t0); got != 10*time.Second {
			t.Errorf("converged after %v, want 10s", got)
		}
		// A change un-converges; convergence returns after another timeout.
		a.event()
		synctest.Wait()
		if st, _ := r.lastStatus(); st.Converged {
			t.Error("still converged after a CheckApply changed something")
		}
		advance(11 * time.Second)
		if st, _ := r.lastStatus(); !st.Converged {
			t.Error("did not converge again")
		}
		// A CheckApply that finds the state correct does not un-converge.
		a.result = nil
		a.event()
		synctest.Wait()
		if n := len(r.statuses()); n != 3 {
			t.Errorf("got %d status changes, want 3: %+v", n, r.statuses())
		}
	})
}

// Guarantee 12: never converged before every vertex ran its first CheckApply,
// however short the timeout and however slow a Watch is to start; and never
// before a graph arrived.
func TestNeverConvergedBeforeFirstCheckApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		fast, slow, child := newFake(rec, "fast"), newFake(rec, "slow"), newFake(rec, "child")
		slow.hold = make(chan struct{})
		r := start(t, nil, func(c *engineConfig) { c.ConvergedTimeout = 0 })
		advance(hour)
		if _, ok := r.lastStatus(); ok {
			t.Fatal("converged with no graph")
		}
		r.graphs <- graphOf(t, []*fake{fast, slow, child}, "slow->child")
		advance(hour)
		if _, ok := r.lastStatus(); ok {
			t.Fatal("converged before every vertex ran")
		}
		close(slow.hold)
		synctest.Wait()
		st, ok := r.lastStatus()
		if !ok || !st.Converged {
			t.Fatal("not converged once every vertex ran")
		}
		checks(t, map[*fake]int{fast: 1, slow: 1, child: 1})
	})
}

// Guarantee 5: a failed vertex does not hold back convergence; the status
// names it.
func TestFailedVertexDoesNotBlockConvergence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		bad, child, ok1 := newFake(rec, "bad"), newFake(rec, "child"), newFake(rec, "ok")
		bad.result = fails
		r := start(t, graphOf(t, []*fake{bad, child, ok1}, "bad->child"), func(c *engineConfig) {
			c.ConvergedTimeout = 5 * time.Second
		})
		advance(6 * time.Second)
		st, ok := r.lastStatus()
		if !ok || !st.Converged || !slices.Equal(st.Failed, []engine.ID{id("bad")}) {
			t.Fatalf("got %+v, want converged with bad failed", st)
		}
	})
}

// A notify edge delivers a refresh once, and only after the parent changed
// something; a plain edge never does.
func TestNotifyEdgeDeliversRefreshOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, notified, plain := newFake(rec, "a"), newFake(rec, "notified"), newFake(rec, "plain")
		a.result = changes
		start(t, graphOf(t, []*fake{a, notified, plain}, "a=>notified", "a->plain"), nil)
		synctest.Wait()
		// notified's first CheckApply carries the refresh from a's first run.
		if got := notified.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Errorf("notified: got refreshes %v, want [true]", got)
		}
		if got := plain.refreshLog(); !slices.Equal(got, []bool{false}) {
			t.Errorf("plain: got refreshes %v, want [false]", got)
		}
		notified.event()
		synctest.Wait()
		a.result = nil // in state: no refresh
		a.event()
		synctest.Wait()
		a.result = changes
		a.event()
		synctest.Wait()
		if got := notified.refreshLog(); !slices.Equal(got, []bool{true, false, true}) {
			t.Errorf("notified: got refreshes %v, want [true false true]", got)
		}
		checks(t, map[*fake]int{plain: 1})
	})
}

// A refresh whose CheckApply fails is delivered again on the next run.
func TestRefreshKeptWhenCheckApplyFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		b.result = func(n int) (bool, error) {
			if n == 1 {
				return false, errScripted
			}
			return true, nil
		}
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), nil)
		synctest.Wait()
		b.event()
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true, true}) {
			t.Errorf("got refreshes %v, want [true true]", got)
		}
	})
}

// Run may only be called once, and New validates the config.
func TestRunTwiceAndBadConfig(t *testing.T) {
	cfg := engine.DefaultConfig()
	cfg.Hostname = ""
	if _, err := engine.New(cfg); err == nil {
		t.Error("New accepted an empty hostname")
	}
	eng, err := engine.New(engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := eng.Run(ctx, nil); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if err := eng.Run(ctx, nil); err == nil {
		t.Error("second Run did not fail")
	}
}
