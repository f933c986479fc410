package engine_test

import (
	"reflect"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
)

// GraphStatus describes the running graph: each vertex with its state, the
// edges sorted with their notify flag and send/recv keys, and the members
// of an autogrouped vertex; after a swap it describes the new graph.
func TestGraphStatusDescribesRunningGraphAndItsSwaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		s := &sender{fake: newFake(rec, "s"), next: "v"}
		r := &receiver{fake: newFake(rec, "r")}
		top := newFake(rec, "top")
		ga, gb := &groupable{fake: newFake(rec, "ga"), key: "k"}, &groupable{fake: newFake(rec, "gb"), key: "k"}
		g := graphOfVertices(t, []engine.Vertex{vtx("top", top), vtx("gb", gb), vtx("ga", ga), vtx("s", s), vtx("r", r)}, "r->top")
		for _, e := range []engine.Edge{
			{From: id("top"), To: id("ga"), Notify: true},
			{From: id("top"), To: id("gb")},
			{From: id("s"), To: id("r"), Keys: []engine.KeyMap{{Send: "out", Recv: "value"}, {Send: "count", Recv: "size"}}},
		} {
			if err := g.AddEdge(e); err != nil {
				t.Fatal(err)
			}
		}
		run := start(t, engine.AutoGroup(g), nil)
		synctest.Wait()

		gs := run.eng.GraphStatus()
		var ids []string
		for _, st := range gs.Resources {
			ids = append(ids, st.ID.Name+":"+string(st.State))
		}
		if want := []string{"ga:ok", "r:ok", "s:ok", "top:ok"}; !reflect.DeepEqual(ids, want) || gs.Graph != "test" {
			t.Errorf("graph %q vertices %v, want test with %v", gs.Graph, ids, want)
		}
		wantEdges := []engine.Edge{
			{From: id("r"), To: id("top")},
			{From: id("s"), To: id("r"), Keys: []engine.KeyMap{{Send: "count", Recv: "size"}, {Send: "out", Recv: "value"}}},
			{From: id("top"), To: id("ga"), Notify: true},
		}
		if !reflect.DeepEqual(gs.Edges, wantEdges) {
			t.Errorf("edges %+v, want %+v", gs.Edges, wantEdges)
		}
		if want := map[engine.ID][]engine.ID{id("ga"): {id("ga"), id("gb")}}; !reflect.DeepEqual(gs.Members, want) {
			t.Errorf("members %v, want %v", gs.Members, want)
		}

		next := graphOf(t, []*fake{newFake(rec, "top"), newFake(rec, "x")}, "x=>top")
		run.graphs <- next
		synctest.Wait()
		gs = run.eng.GraphStatus()
		ids = ids[:0]
		for _, st := range gs.Resources {
			ids = append(ids, st.ID.Name)
		}
		if !reflect.DeepEqual(ids, []string{"top", "x"}) || gs.Members != nil ||
			!reflect.DeepEqual(gs.Edges, []engine.Edge{{From: id("x"), To: id("top"), Notify: true}}) {
			t.Errorf("after the swap: vertices %v, edges %+v, members %v", ids, gs.Edges, gs.Members)
		}
	})
}

// Before the first graph, GraphStatus is empty.
func TestGraphStatusEmptyBeforeFirstGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		run := start(t, nil, nil)
		synctest.Wait()
		if gs := run.eng.GraphStatus(); gs.Graph != "" || len(gs.Resources) != 0 || gs.Edges != nil || gs.Members != nil {
			t.Errorf("got %+v, want empty", gs)
		}
	})
}
