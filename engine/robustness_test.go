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

// steered is a fake whose Watch and Init the test controls.
type steered struct {
	*fake
	Version   string        // a parameter: changing it changes the resource
	early     bool          // call Event before Running, then wait for hold
	die       chan error    // Watch returns what is sent here
	stuck     chan struct{} // if set, Watch ignores ctx until this closes
	initErr   error
	initPanic bool
}

func steer(f *fake) *steered { return &steered{fake: f, die: make(chan error)} }

func (s *steered) Init(rt *engine.Runtime) error {
	if s.initPanic {
		panic("init boom")
	}
	if err := s.fake.Init(rt); err != nil {
		return err
	}
	return s.initErr
}

func (s *steered) Watch(ctx context.Context) error {
	rt := s.fake.rt.Load()
	if s.early {
		rt.Event()
		<-s.hold
	}
	rt.Running()
	if s.stuck != nil {
		<-s.stuck
		return nil
	}
	select {
	case err := <-s.die:
		return err
	case <-ctx.Done():
		return nil
	}
}

func graphOfVertices(t *testing.T, vs []engine.Vertex, edges ...string) *engine.Graph {
	t.Helper()
	g := engine.NewGraph("test")
	for _, v := range vs {
		if err := g.AddVertex(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range edges {
		from, to, _ := cutEdge(e)
		if err := g.AddEdge(engine.Edge{From: id(from), To: id(to)}); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func cutEdge(e string) (string, string, bool) {
	for i := 0; i+1 < len(e); i++ {
		if e[i:i+2] == "->" {
			return e[:i], e[i+2:], true
		}
	}
	return "", "", false
}

func vtx(name string, r engine.Res) engine.Vertex { return engine.Vertex{ID: id(name), Res: r} }

// A Watch that fails while its vertex's CheckApply runs keeps the vertex
// failed when that CheckApply succeeds.
func TestWatchFailureDuringCheckApplyIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := steer(newFake(rec, "a")), newFake(rec, "b")
		a.gate = make(chan struct{})
		r := start(t, graphOfVertices(t, []engine.Vertex{vtx("a", a), vtx("b", b)}, "a->b"),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		a.die <- errScripted
		synctest.Wait()
		close(a.gate)
		synctest.Wait()
		checks(t, map[*fake]int{b: 0})
		if st, _ := r.lastStatus(); !st.Converged || !slices.Equal(st.Failed, []engine.ID{id("a")}) {
			t.Errorf("got %+v, want converged with a failed", st)
		}
	})
}

// Guarantee 2: an Event sent before Running does not start CheckApply.
func TestEventBeforeRunningDoesNotStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := steer(newFake(rec, "a"))
		a.early, a.hold = true, make(chan struct{})
		start(t, graphOfVertices(t, []engine.Vertex{vtx("a", a)}), nil)
		synctest.Wait()
		checks(t, map[*fake]int{a.fake: 0})
		close(a.hold)
		synctest.Wait()
		checks(t, map[*fake]int{a.fake: 1})
	})
}

// A second Running counts as an event.
func TestSecondRunningCountsAsEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		start(t, graphOf(t, []*fake{a}), nil)
		synctest.Wait()
		a.rt.Load().Running()
		synctest.Wait()
		checks(t, map[*fake]int{a: 2})
	})
}

// A Watch that ignores cancellation neither wedges a swap for ever nor
// stops Abort from ending Run.
func TestStuckWatchDoesNotWedgeTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := steer(newFake(rec, "a")), newFake(rec, "b")
		a.stuck = make(chan struct{})
		r := start(t, graphOfVertices(t, []engine.Vertex{vtx("a", a), vtx("b", b)}), nil)
		synctest.Wait()
		r.graphs <- graphOf(t, []*fake{b}) // removes a, whose Watch will not stop
		advance(11 * time.Second)          // past StopTimeout
		b.event()
		synctest.Wait()
		checks(t, map[*fake]int{b: 2})
		if a.cleanups.Load() != 0 {
			t.Error("Cleanup called while Watch was still running")
		}
		close(a.stuck)
	})
}

// After Abort, Run returns within StopTimeout even if a CheckApply ignores
// its cancelled context.
func TestAbortGivesUpOnStuckCheckApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		a.gate = make(chan struct{}) // not ctx-aware
		r := start(t, graphOf(t, []*fake{a}), nil)
		synctest.Wait()
		r.cancel()
		r.eng.Abort()
		t0 := time.Now()
		if err := r.stop(); !errors.Is(err, engine.ErrAborted) {
			t.Errorf("Run: got %v, want ErrAborted", err)
		}
		if took := time.Since(t0); took != 10*time.Second {
			t.Errorf("Run returned after %v, want the 10s StopTimeout", took)
		}
		close(a.gate) // the stuck CheckApply's goroutine must still exit
	})
}

// A dead vertex (Init or Watch failed) is restarted by a swap only when its
// parameters change, or when it has meta rewatch.
func TestDeadVertexRestartedByChangeOrRewatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), steer(newFake(rec, "b"))
		a.watchErr = errScripted
		b.initErr = errScripted
		r := start(t, graphOfVertices(t, []engine.Vertex{vtx("a", a), vtx("b", b)}), nil)
		synctest.Wait()

		// Same parameters, no rewatch: both stay dead.
		a2, b2 := newFake(rec, "a"), steer(newFake(rec, "b"))
		r.graphs <- graphOfVertices(t, []engine.Vertex{vtx("a", a2), vtx("b", b2)})
		synctest.Wait()
		if a2.inits.Load()+b2.inits.Load() != 0 {
			t.Fatal("a dead vertex with unchanged parameters was restarted")
		}
		if b.cleanups.Load() != 0 {
			t.Error("Cleanup called after a failed Init")
		}

		// rewatch restarts a; a parameter change restarts b.
		a3, b3 := newFake(rec, "a"), steer(newFake(rec, "b"))
		b3.Version = "changed"
		r.graphs <- graphOfVertices(t, []engine.Vertex{
			{ID: id("a"), Res: a3, Meta: engine.Meta{Rewatch: true}}, vtx("b", b3)})
		synctest.Wait()
		checks(t, map[*fake]int{a3: 1, b3.fake: 1})
	})
}

// A panic in Init fails the vertex, not the engine.
func TestPanicInInitFailsVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := steer(newFake(rec, "a")), newFake(rec, "b")
		a.initPanic = true
		r := start(t, graphOfVertices(t, []engine.Vertex{vtx("a", a), vtx("b", b)}),
			func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		checks(t, map[*fake]int{b: 1})
		if st, _ := r.lastStatus(); !slices.Equal(st.Failed, []engine.ID{id("a")}) {
			t.Errorf("got %+v, want a failed", st)
		}
	})
}

func TestNilGraphIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		r := start(t, nil, nil)
		r.graphs <- nil
		r.graphs <- graphOf(t, []*fake{a})
		synctest.Wait()
		checks(t, map[*fake]int{a: 1})
	})
}

// A change of metaparameters alone replaces the vertex.
func TestMetaChangeReplacesVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a := newFake(rec, "a")
		r := start(t, graphOf(t, []*fake{a}), nil)
		synctest.Wait()
		a2 := newFake(rec, "a")
		r.graphs <- graphOfVertices(t, []engine.Vertex{engineVertex(a2, true)})
		synctest.Wait()
		if a.cleanups.Load() != 1 || a2.inits.Load() != 1 {
			t.Error("a metaparameter change did not replace the vertex")
		}
	})
}

// A vertex in noop mode changes nothing, so it refreshes nothing.
func TestNoopSendsNoRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		g := graphOfVertices(t, []engine.Vertex{engineVertex(a, true), vtx("b", b)})
		if err := g.AddEdge(engine.Edge{From: id("a"), To: id("b"), Notify: true}); err != nil {
			t.Fatal(err)
		}
		start(t, g, nil)
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{false}) {
			t.Errorf("b saw refreshes %v, want [false]", got)
		}
	})
}

// Signals from a vertex that was removed are ignored.
func TestSignalsFromRemovedVertexIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		r := start(t, graphOf(t, []*fake{a, b}), nil)
		synctest.Wait()
		r.graphs <- graphOf(t, []*fake{b})
		synctest.Wait()
		a.event()
		a.rt.Load().Running()
		synctest.Wait()
		checks(t, map[*fake]int{a: 1, b: 1})
	})
}

// A kept vertex that gains a parent whose Watch has not started waits for it.
func TestKeptVertexWaitsForNewParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		b := newFake(rec, "b")
		r := start(t, graphOf(t, []*fake{b}), nil)
		synctest.Wait()
		p := newFake(rec, "p")
		p.hold = make(chan struct{})
		r.graphs <- graphOf(t, []*fake{p, newFake(rec, "b")}, "p->b")
		synctest.Wait()
		b.event()
		synctest.Wait()
		checks(t, map[*fake]int{b: 1, p: 0})
		close(p.hold)
		synctest.Wait()
		checks(t, map[*fake]int{b: 2, p: 1})
		if log := rec.log(); lastIndex(log, "end p") > lastIndex(log, "start b") {
			t.Errorf("b ran before its new parent: %v", log)
		}
	})
}

// An empty graph converges, and graphs can be swapped to and from it.
func TestEmptyGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		r := start(t, engine.NewGraph("empty"), func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		if st, _ := r.lastStatus(); !st.Converged {
			t.Error("an empty graph did not converge")
		}
		a := newFake(rec, "a")
		r.graphs <- graphOf(t, []*fake{a})
		synctest.Wait()
		r.graphs <- engine.NewGraph("empty")
		synctest.Wait()
		if a.checks.Load() != 1 || a.cleanups.Load() != 1 {
			t.Errorf("a: checks=%d cleanups=%d, want 1 and 1", a.checks.Load(), a.cleanups.Load())
		}
	})
}

// A noop run only looks, so a refresh it saw stays due: the first real run
// of the vertex, once noop is turned off, gets it.
func TestNoopRunLeavesTheRefreshForTheFirstRealRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		graph := func(b *fake, noop bool) *engine.Graph {
			g := graphOfVertices(t, []engine.Vertex{vtx("a", a), engineVertex(b, noop)})
			if err := g.AddEdge(engine.Edge{From: id("a"), To: id("b"), Notify: true}); err != nil {
				t.Fatal(err)
			}
			return g
		}
		r := start(t, graph(b, true), nil)
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Fatalf("noop run of b saw refreshes %v, want [true]", got)
		}
		b2 := newFake(rec, "b")
		r.graphs <- graph(b2, false)
		synctest.Wait()
		checks(t, map[*fake]int{a: 1})
		if got := b2.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Errorf("first real run of b saw refreshes %v, want [true]", got)
		}
	})
}
