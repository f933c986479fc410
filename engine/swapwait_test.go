package engine_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
)

// Issue 9, item 1: with a long CheckApply running (an exec `sleep 15`),
// editing the graph froze the whole agent until it ended: new resources did
// not start and a deleted managed file stayed missing. A swap no longer
// waits for vertices it keeps: it goes ahead at once, and the kept vertex
// goes on running.
func TestSwapDoesNotWaitForKeptRunningVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		file, sleep := newFake(rec, "file"), newFake(rec, "sleep")
		sleep.gate = make(chan struct{})
		r := start(t, graphOf(t, []*fake{file, sleep}), nil)
		synctest.Wait()
		if !rec.isRunning("sleep") {
			t.Fatal("sleep should be running")
		}

		added := newFake(rec, "added")
		r.graphs <- graphOf(t, []*fake{file, sleep, added})
		synctest.Wait()
		if added.inits.Load() != 1 || added.checks.Load() != 1 {
			t.Fatalf("the swap waited for a vertex it keeps: added has inits=%d checks=%d, want 1 and 1",
				added.inits.Load(), added.checks.Load())
		}
		// Drift of another kept vertex is repaired while sleep runs.
		file.event()
		synctest.Wait()
		checks(t, map[*fake]int{file: 2, sleep: 1})
		if !rec.isRunning("sleep") || sleep.cleanups.Load() != 0 || sleep.inits.Load() != 1 {
			t.Error("the running kept vertex was touched by the swap")
		}
		close(sleep.gate)
		synctest.Wait()
		checks(t, map[*fake]int{file: 2, sleep: 1, added: 1})
		sleep.event() // and it still runs on its own events afterwards
		synctest.Wait()
		checks(t, map[*fake]int{sleep: 2})
	})
}

// A swap waits for the running CheckApply of a vertex it replaces, logging
// its name; meanwhile the rest of the graph keeps repairing drift, and
// nothing of the new graph starts.
func TestSwapWaitsOnlyForReplacedVerticesAndNamesThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		logs := newLogCapture()
		a, other := newFake(rec, "a"), newFake(rec, "other")
		a.gate = make(chan struct{})
		r := start(t, graphOf(t, []*fake{a, other}), func(c *engineConfig) { c.Logger = slogOf(logs) })
		synctest.Wait()

		a2, b := newFake(rec, "a"), newFake(rec, "b")
		a2.Param = "changed"
		r.graphs <- graphOf(t, []*fake{a2, other, b})
		synctest.Wait()
		if b.inits.Load() != 0 || a2.inits.Load() != 0 || a.cleanups.Load() != 0 {
			t.Fatal("the swap began while a vertex it replaces was running")
		}
		waits := logs.records("graph swap waits")
		if len(waits) != 1 || waits[0].attrs["waiting_for"] != "fake[a]" {
			t.Errorf("got log records %+v, want one naming fake[a]", waits)
		}
		other.event()
		synctest.Wait()
		checks(t, map[*fake]int{other: 2})

		close(a.gate)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, a2: 1, b: 1, other: 2})
		before(t, rec, "end a", "cleanup a")
		before(t, rec, "cleanup a", "start b")
		if a.cleanups.Load() != 1 || a2.inits.Load() != 1 {
			t.Errorf("a was not replaced: cleanups=%d, new inits=%d", a.cleanups.Load(), a2.inits.Load())
		}
	})
}

// A vertex that the pending swap replaces starts no new CheckApply while it
// waits, even when its Watch reports a change: it is about to go.
func TestReplacedVertexDoesNotRunWhileSwapWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		slow, old := newFake(rec, "slow"), newFake(rec, "old")
		slow.gate = make(chan struct{})
		r := start(t, graphOf(t, []*fake{slow, old}), nil)
		synctest.Wait()

		slow2, old2 := newFake(rec, "slow"), newFake(rec, "old")
		slow2.Param, old2.Param = "new", "new"
		r.graphs <- graphOf(t, []*fake{slow2, old2})
		synctest.Wait()
		old.event()
		synctest.Wait()
		checks(t, map[*fake]int{old: 1})

		// A newer graph keeps old as it was: it may run its event now.
		slow3, old3 := newFake(rec, "slow"), newFake(rec, "old")
		slow3.Param = "newer"
		r.graphs <- graphOf(t, []*fake{slow3, old3})
		synctest.Wait()
		checks(t, map[*fake]int{old: 2, old3: 0})
		close(slow.gate)
		synctest.Wait()
		checks(t, map[*fake]int{slow: 1, slow2: 0, slow3: 1, old: 2})
		if old.cleanups.Load() != 0 || old3.inits.Load() != 0 {
			t.Error("a vertex the newest graph keeps was replaced")
		}
	})
}

// Order holds across a swap made while a kept vertex runs: a new child of
// it waits for it to finish, and so does a new parent (an ancestor never
// runs while a descendant does).
func TestSwapWhileKeptVertexRunsKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		mid := newFake(rec, "mid")
		mid.gate = make(chan struct{})
		r := start(t, graphOf(t, []*fake{mid}), nil)
		synctest.Wait()

		parent, child := newFake(rec, "parent"), newFake(rec, "child")
		r.graphs <- graphOf(t, []*fake{parent, mid, child}, "parent->mid", "mid->child")
		synctest.Wait()
		if parent.inits.Load() != 1 || child.inits.Load() != 1 {
			t.Fatal("the new vertices were not started at once")
		}
		checks(t, map[*fake]int{parent: 0, child: 0, mid: 1})
		close(mid.gate)
		synctest.Wait()
		before(t, rec, "end mid", "start parent")
		before(t, rec, "end parent", "start child")
		checks(t, map[*fake]int{parent: 1, mid: 1, child: 1})
	})
}

// A CheckApply the swap waits for is cancelled after SwapTimeout; one that
// ignores its cancellation is left behind after StopTimeout more, and
// cleaned up once it returns.
func TestSwapWaitIsBounded(t *testing.T) {
	for _, ignores := range []bool{false, true} {
		name := map[bool]string{false: "honours cancellation", true: "ignores cancellation"}[ignores]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder()
				logs := newLogCapture()
				a := newFake(rec, "a")
				a.gate, a.ctxAware = make(chan struct{}), !ignores
				r := start(t, graphOf(t, []*fake{a}), func(c *engineConfig) {
					c.Logger = slogOf(logs)
					c.SwapTimeout, c.StopTimeout = time.Minute, 10*time.Second
				})
				synctest.Wait()
				a2 := newFake(rec, "a")
				a2.Param = "v2"
				r.graphs <- graphOf(t, []*fake{a2})
				advance(time.Minute - time.Millisecond)
				if a2.inits.Load() != 0 {
					t.Fatal("the swap went ahead before SwapTimeout")
				}
				advance(time.Millisecond)
				if got := logs.records("cancelling running resources"); len(got) != 1 ||
					got[0].attrs["waiting_for"] != "fake[a]" {
					t.Errorf("got %+v, want one record naming fake[a]", got)
				}
				if !ignores {
					checks(t, map[*fake]int{a2: 1})
					if a.cleanups.Load() != 1 {
						t.Error("the cancelled vertex was not cleaned up")
					}
					return
				}
				if a2.inits.Load() != 0 {
					t.Fatal("the swap went ahead before StopTimeout after cancelling")
				}
				advance(10 * time.Second)
				// The swap went ahead, but the replacement does not run while
				// the old CheckApply does: one resource, one CheckApply.
				if a2.inits.Load() != 1 {
					t.Fatal("the swap did not go ahead after StopTimeout")
				}
				checks(t, map[*fake]int{a2: 0})
				if a.cleanups.Load() != 0 {
					t.Error("a vertex whose CheckApply still runs was cleaned up")
				}
				close(a.gate)
				synctest.Wait()
				if a.cleanups.Load() != 1 {
					t.Error("the vertex left behind was not cleaned up once it returned")
				}
				checks(t, map[*fake]int{a2: 1})
				if log := rec.log(); lastIndex(log, "start a") < slices.Index(log, "end a") {
					t.Errorf("the replacement started before the old CheckApply ended: %v", log)
				}
				a2.event()
				synctest.Wait()
				checks(t, map[*fake]int{a2: 2})
			})
		})
	}
}

// A vertex the swap keeps whose Watch dies while the swap waits, with meta
// rewatch in the new graph, is restarted by the swap, as it would have been
// had it died before the graph arrived.
func TestVertexDyingWhileSwapWaitsIsRewatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		slow, k := newFake(rec, "slow"), newFake(rec, "k")
		slow.gate = make(chan struct{})
		k.failWatch = make(chan error)
		kv := engine.Vertex{ID: id("k"), Res: k, Meta: engine.Meta{Rewatch: true}}
		g := engine.NewGraph("g")
		must(t, g.AddVertex(engine.Vertex{ID: id("slow"), Res: slow}))
		must(t, g.AddVertex(kv))
		r := start(t, g, nil)
		synctest.Wait()

		slow2, k2 := newFake(rec, "slow"), newFake(rec, "k")
		slow2.Param = "v2"
		g2 := engine.NewGraph("g2")
		must(t, g2.AddVertex(engine.Vertex{ID: id("slow"), Res: slow2}))
		must(t, g2.AddVertex(engine.Vertex{ID: id("k"), Res: k2, Meta: engine.Meta{Rewatch: true}}))
		r.graphs <- g2
		synctest.Wait()
		k.failWatch <- errors.New("watch broke")
		synctest.Wait()
		close(slow.gate)
		synctest.Wait()
		if k2.inits.Load() != 1 || k2.checks.Load() != 1 || !k2.watching.Load() {
			t.Errorf("the dead vertex was not rewatched: inits=%d checks=%d watching=%t",
				k2.inits.Load(), k2.checks.Load(), k2.watching.Load())
		}
	})
}

// A CheckApply in flight across a swap whose new graph drops the vertex's
// notify edge leaves no in-flight record behind: a later restart does not
// refresh a child that was never notified.
func TestInflightRecordClearedWhenSwapDropsNotifyEdge(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.gate = make(chan struct{})
		r := start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		r.graphs <- graphOf(t, []*fake{a, b}) // no edge now
		synctest.Wait()
		close(a.gate)
		synctest.Wait()
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{false}) {
			t.Errorf("after restart b saw refreshes %v, want [false]", got)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// slogOf returns a logger writing to h.
func slogOf(h slog.Handler) *slog.Logger { return slog.New(h) }

// A kept vertex that receives a value while the swap waits is compared
// again before the swap: if the new graph, which no longer sends it that
// parameter, sets it to something else, the vertex is replaced, as it would
// have been had the value arrived before the graph.
func TestVertexReceivingWhileSwapWaitsIsComparedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow, s, r, r2 := swapDroppingAReceiveEdge(t, nil)
		s.set("y") // the old edge still delivers while the swap waits
		s.event()
		synctest.Wait()
		if got := r.log(); !slices.Equal(got, []string{"x (changed)", "y (changed)"}) {
			t.Fatalf("receiver saw %q", got)
		}
		close(slow.gate)
		synctest.Wait()
		if r2.inits.Load() != 1 || !slices.Equal(r2.log(), []string{"x"}) {
			t.Errorf("r holds a received value the new graph does not give it: r2 inits=%d saw %q",
				r2.inits.Load(), r2.log())
		}
	})
}

// A vertex the swap replaces that is still waiting for a semaphore held by
// a kept vertex gives up the wait at once: the swap does not wait for the
// kept holder, and the old parameters are never applied.
func TestReplacedVertexWaitingForSemaphoreDoesNotHoldTheSwap(t *testing.T) {
	for _, global := range []bool{false, true} {
		name := map[bool]string{false: "sema tag", true: "global sema"}[global]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder()
				holder, d := newFake(rec, "holder"), newFake(rec, "d")
				holder.gate = make(chan struct{})
				meta := engine.Meta{}
				if !global {
					meta.Sema = []string{"x"}
				}
				vs := func(h, d *fake) []engine.Vertex {
					return []engine.Vertex{{ID: id("holder"), Res: h, Meta: meta}, {ID: id("d"), Res: d, Meta: meta}}
				}
				r := start(t, graphOfVertices(t, vs(holder, d)), func(c *engineConfig) {
					if global {
						c.Sema = 1
					}
				})
				synctest.Wait()
				// d may have run before holder took the semaphore; either
				// way, holder now holds it and d is waiting for it.
				d.event()
				synctest.Wait()
				dChecks := d.checks.Load()
				if !rec.isRunning("holder") {
					t.Fatal("holder should be running")
				}

				d2, added := newFake(rec, "d"), newFake(rec, "added")
				d2.Param = "new"
				g := graphOfVertices(t, append(vs(holder, d2), engine.Vertex{ID: id("added"), Res: added}))
				r.graphs <- g
				synctest.Wait()
				if d2.inits.Load() != 1 || added.inits.Load() != 1 {
					t.Fatalf("the swap waited for the kept semaphore holder: d2 inits=%d, added inits=%d",
						d2.inits.Load(), added.inits.Load())
				}
				close(holder.gate)
				synctest.Wait()
				if got := d.checks.Load(); got != dChecks {
					t.Errorf("the replaced d ran its old parameters after the swap: %d CheckApply calls, had %d", got, dChecks)
				}
				checks(t, map[*fake]int{d2: 1})
			})
		})
	}
}

// A kept vertex that the swap finds, once it has waited, it must replace
// after all (it received a value meanwhile) and that is running gets its
// own bound: cancelled SwapTimeout after that.
func TestVertexDoomedLateIsBoundedToo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogCapture()
		slow, s, r, r2 := swapDroppingAReceiveEdge(t, func(c *engineConfig) {
			c.Logger, c.SwapTimeout = slogOf(logs), time.Minute
		})
		r.gate, r.ctxAware = make(chan struct{}), true // r's next run blocks until cancelled
		s.set("y")
		s.event()
		synctest.Wait()
		close(slow.gate)
		synctest.Wait()
		if got := logs.records("now also waits"); len(got) != 1 || got[0].attrs["waiting_for"] != "fake[r]" {
			t.Fatalf("got %+v, want one record naming fake[r]", got)
		}
		advance(time.Minute)
		if r2.inits.Load() != 1 {
			t.Fatal("the late-doomed vertex was not cancelled after SwapTimeout")
		}
		synctest.Wait()
		if got := logs.records("resource failed"); len(got) != 0 {
			t.Errorf("a cancellation by the swap was logged as a failure: %+v", got)
		}
	})
}

// swapDroppingAReceiveEdge runs slow (gated), and s sending "x" to r, then
// swaps in a graph where slow changed (so the swap waits for it) and r's
// value "x" is written in, no longer received: r2 is its new version.
func swapDroppingAReceiveEdge(t *testing.T, mod func(*engineConfig)) (slow *fake, s *sender, r, r2 *receiver) {
	t.Helper()
	rec := newRecorder()
	slow = newFake(rec, "slow")
	slow.gate = make(chan struct{})
	s = &sender{fake: newFake(rec, "s"), next: "x"}
	r = &receiver{fake: newFake(rec, "r")}
	g := sendGraph(t, s, r)
	must(t, g.AddVertex(vtx("slow", slow)))
	run := start(t, g, mod)
	synctest.Wait()

	slow2 := newFake(rec, "slow")
	slow2.Param = "v2"
	x := "x"
	r2 = &receiver{fake: newFake(rec, "r"), Value: &x}
	run.graphs <- graphOfVertices(t, []engine.Vertex{vtx("slow", slow2),
		vtx("s", &sender{fake: newFake(rec, "s"), next: "x"}), vtx("r", r2)})
	synctest.Wait()
	return slow, s, r, r2
}
