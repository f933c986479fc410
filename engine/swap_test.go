package engine_test

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
)

// Guarantee 10: unchanged vertices keep running untouched; changed ones are
// replaced; new ones start; removed ones stop.
func TestSwapKeepsUnchangedVertices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		keep, change, drop := newFake(rec, "keep"), newFake(rec, "change"), newFake(rec, "drop")
		change.Param = "v1"
		r := start(t, graphOf(t, []*fake{keep, change, drop}, "keep->change"), nil)
		synctest.Wait()
		checks(t, map[*fake]int{keep: 1, change: 1, drop: 1})

		keep2, change2, added := newFake(rec, "keep"), newFake(rec, "change"), newFake(rec, "added")
		change2.Param = "v2"
		r.graphs <- graphOf(t, []*fake{keep2, change2, added}, "keep->change", "keep->added")
		synctest.Wait()

		if keep.inits.Load() != 1 || keep.cleanups.Load() != 0 || keep.checks.Load() != 1 || !keep.watching.Load() {
			t.Errorf("kept vertex was touched: inits=%d cleanups=%d checks=%d watching=%t",
				keep.inits.Load(), keep.cleanups.Load(), keep.checks.Load(), keep.watching.Load())
		}
		if keep2.inits.Load() != 0 {
			t.Error("the new graph's copy of an unchanged vertex was initialised")
		}
		if change.cleanups.Load() != 1 || change.watching.Load() {
			t.Error("the old version of a changed vertex was not stopped")
		}
		if change2.inits.Load() != 1 || change2.checks.Load() != 1 {
			t.Errorf("the new version of a changed vertex: inits=%d checks=%d, want 1 and 1",
				change2.inits.Load(), change2.checks.Load())
		}
		if drop.cleanups.Load() != 1 || drop.watching.Load() {
			t.Error("a removed vertex was not stopped")
		}
		checks(t, map[*fake]int{added: 1})
		if log := rec.log(); slices.Index(log, "cleanup change") > lastIndex(log, "init change") {
			t.Errorf("the new version was initialised before the old one was cleaned up: %v", log)
		}

		// The kept vertex still delivers events.
		keep.event()
		synctest.Wait()
		checks(t, map[*fake]int{keep: 2, change2: 1, added: 1})
	})
}

// Guarantee 10: A -> B -> A, with vertices and edges coming and going.
func TestSwapABA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		mk := func(withC bool) (*engine.Graph, []*fake) {
			a, b := newFake(rec, "a"), newFake(rec, "b")
			fs := []*fake{a, b}
			edges := []string{"a->b"}
			if withC {
				c := newFake(rec, "c")
				fs = append(fs, c)
				edges = []string{"a->c", "c->b"}
			}
			return graphOf(t, fs, edges...), fs
		}
		gA, fsA := mk(false)
		r := start(t, gA, nil)
		synctest.Wait()
		for range 3 {
			gB, fsB := mk(true)
			r.graphs <- gB
			synctest.Wait()
			c := fsB[2]
			checks(t, map[*fake]int{c: 1})
			gA2, _ := mk(false)
			r.graphs <- gA2
			synctest.Wait()
			if c.cleanups.Load() != 1 {
				t.Error("c was not cleaned up when the graph went back to A")
			}
		}
		// a and b were never replaced: each ran once and was initialised once.
		for _, f := range fsA {
			if f.inits.Load() != 1 || f.checks.Load() != 1 || f.cleanups.Load() != 0 {
				t.Errorf("%s: inits=%d checks=%d cleanups=%d, want 1, 1, 0",
					f.name, f.inits.Load(), f.checks.Load(), f.cleanups.Load())
			}
		}
		fsA[0].event()
		synctest.Wait()
		checks(t, map[*fake]int{fsA[0]: 2})
	})
}

// A graph with a cycle is rejected and the running one keeps going.
func TestCyclicGraphRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		r := start(t, graphOf(t, []*fake{a, b}, "a->b"), nil)
		synctest.Wait()

		a2, b2 := newFake(rec, "a"), newFake(rec, "b")
		a2.Param, b2.Param = "new", "new"
		bad := graphOf(t, []*fake{a2, b2}, "a->b", "b->a")
		var cyc *engine.CycleError
		if err := bad.Validate(); !errors.As(err, &cyc) || len(cyc.Cycle) != 2 {
			t.Fatalf("Validate: got %v, want a two-vertex cycle", err)
		}
		r.graphs <- bad
		synctest.Wait()
		if a2.inits.Load()+b2.inits.Load() != 0 || a.cleanups.Load()+b.cleanups.Load() != 0 {
			t.Error("a cyclic graph was swapped in")
		}
		a.event()
		synctest.Wait()
		checks(t, map[*fake]int{a: 2})
	})
}

func TestGraphValidateFindsCycles(t *testing.T) {
	rec := newRecorder()
	fs := []*fake{newFake(rec, "a"), newFake(rec, "b"), newFake(rec, "c"), newFake(rec, "d")}
	for _, tc := range []struct {
		edges []string
		cycle int // length of the cycle reported, 0 for none
	}{
		{[]string{"a->b", "b->c", "c->d"}, 0},
		{[]string{"a->b", "a->c", "b->d", "c->d"}, 0},
		{[]string{"a->a"}, 1},
		{[]string{"a->b", "b->c", "c->a", "c->d"}, 3},
		{[]string{"d->a", "a->b", "b->c", "c->b"}, 2},
	} {
		err := graphOf(t, fs, tc.edges...).Validate()
		var cyc *engine.CycleError
		switch {
		case tc.cycle == 0 && err != nil:
			t.Errorf("%v: got %v, want no error", tc.edges, err)
		case tc.cycle > 0 && (!errors.As(err, &cyc) || len(cyc.Cycle) != tc.cycle):
			t.Errorf("%v: got %v, want a cycle of %d", tc.edges, err, tc.cycle)
		}
	}
}

func TestGraphRejectsDuplicatesAndMissingEndpoints(t *testing.T) {
	rec := newRecorder()
	g := graphOf(t, []*fake{newFake(rec, "a")})
	if err := g.AddVertex(engine.Vertex{ID: id("a"), Res: newFake(rec, "a")}); !errors.Is(err, engine.ErrDuplicate) {
		t.Errorf("duplicate vertex: got %v, want ErrDuplicate", err)
	}
	if err := g.AddEdge(engine.Edge{From: id("a"), To: id("zz")}); !errors.Is(err, engine.ErrNoVertex) {
		t.Errorf("edge to a missing vertex: got %v, want ErrNoVertex", err)
	}
}
