package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
)

// pathRes is a fake that provides a path and requires its parents.
type pathRes struct {
	*fake
	Path string
}

func (p *pathRes) Provides() []string {
	self, _ := engine.PathUIDs(p.Path)
	return []string{self}
}

func (p *pathRes) Requires() []string {
	_, parents := engine.PathUIDs(p.Path)
	return parents
}

func edgesOf(g *engine.Graph) []string {
	var out []string
	for _, e := range g.Edges() {
		out = append(out, e.From.Name+"->"+e.To.Name)
	}
	slices.Sort(out)
	return out
}

func TestPathUIDs(t *testing.T) {
	self, parents := engine.PathUIDs("/a/b//c/")
	if self != "path:/a/b/c" || !slices.Equal(parents, []string{"path:/a/b", "path:/a"}) {
		t.Errorf("got %q %q", self, parents)
	}
}

// A resource on a path depends on the resources managing its parents,
// deterministically; meta NoAutoEdge turns it off; an automatic edge that
// would close a cycle is skipped and reported.
func TestAutoEdges(t *testing.T) {
	rec := newRecorder()
	mk := func(name, path string) *pathRes { return &pathRes{fake: newFake(rec, name), Path: path} }
	dir, sub, file, other := mk("dir", "/srv/"), mk("sub", "/srv/app/"), mk("file", "/srv/app/conf"), mk("other", "/etc/x")
	g := graphOfVertices(t, []engine.Vertex{vtx("file", file), vtx("sub", sub), vtx("dir", dir), vtx("other", other)})
	added, skipped := engine.AutoEdges(g)
	if len(skipped) != 0 {
		t.Errorf("skipped: %v", skipped)
	}
	want := []string{"dir->file", "dir->sub", "sub->file"}
	if got := edgesOf(g); !slices.Equal(got, want) || len(added) != 3 {
		t.Errorf("got edges %v (%d added), want %v", got, len(added), want)
	}

	g = graphOfVertices(t, []engine.Vertex{vtx("dir", dir),
		{ID: id("file"), Res: file, Meta: engine.Meta{NoAutoEdge: true}}})
	if added, _ := engine.AutoEdges(g); len(added) != 0 {
		t.Errorf("NoAutoEdge: edges added: %v", edgesOf(g))
	}

	// file -> dir declared by hand: dir -> file would close a cycle.
	g = graphOfVertices(t, []engine.Vertex{vtx("dir", dir), vtx("file", file)}, "file->dir")
	added, skipped = engine.AutoEdges(g)
	var ee *engine.EdgeError
	if len(added) != 0 || len(skipped) != 1 || !errors.As(skipped[0], &ee) || ee.From != id("dir") {
		t.Errorf("got added %v skipped %v, want the cyclic edge skipped", added, skipped)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("graph invalid after AutoEdges: %v", err)
	}
}

// groupable is a fake that groups by key.
type groupable struct {
	*fake
	key string
}

func (g *groupable) GroupKey() string { return g.key }

// Vertices with the same key and no path between them merge; edges merge,
// keeping notify; semaphores are united.
func TestAutoGroupMerges(t *testing.T) {
	rec := newRecorder()
	mk := func(name, key string) *groupable { return &groupable{fake: newFake(rec, name), key: key} }
	top, a, b, c, d, solo := mk("top", ""), mk("a", "k"), mk("b", "k"), mk("c", "k"), mk("d", "k"), mk("solo", "other")
	g := graphOfVertices(t, []engine.Vertex{vtx("top", top),
		{ID: id("a"), Res: a, Meta: engine.Meta{Sema: []string{"s"}}},
		{ID: id("b"), Res: b, Meta: engine.Meta{Sema: []string{"t:2"}}},
		vtx("c", c), vtx("d", d), vtx("solo", solo)}, "a->c")
	if err := g.AddEdge(engine.Edge{From: id("top"), To: id("a"), Notify: true}); err != nil {
		t.Fatal(err)
	}
	if err := g.AddEdge(engine.Edge{From: id("top"), To: id("b")}); err != nil {
		t.Fatal(err)
	}
	got := engine.AutoGroup(g)
	// a and b are at depth 1 and merge; c is below a, so it cannot join them;
	// d (depth 0) has no partner at its depth.
	var ids []string
	for _, v := range got.Vertices() {
		ids = append(ids, v.ID.Name)
	}
	if !slices.Equal(ids, []string{"top", "a", "c", "d", "solo"}) {
		t.Fatalf("vertices %v", ids)
	}
	va, _ := got.Vertex(id("a"))
	if !slices.Equal(va.Meta.Sema, []string{"s", "t:2"}) {
		t.Errorf("group sema %v, want the union", va.Meta.Sema)
	}
	if e := got.Edges(); len(e) != 2 || !slices.ContainsFunc(e, func(e engine.Edge) bool {
		return e.From == id("top") && e.To == id("a") && e.Notify
	}) {
		t.Errorf("edges %+v: want top->a (notify, merged with top->b) and a->c", e)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	// NoAutoGroup keeps a vertex out.
	g2 := graphOfVertices(t, []engine.Vertex{vtx("a", mk("a", "k")), {ID: id("b"), Res: mk("b", "k"), Meta: engine.Meta{NoAutoGroup: true}}})
	if engine.AutoGroup(g2).Len() != 2 {
		t.Error("NoAutoGroup vertex was grouped")
	}
}

// A group runs every member; its Refresh reaches them all; swapping the same
// graph between its grouped and ungrouped forms, again and again, works.
func TestGroupRunsMembersAndSwapsBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		mk := func(grouped bool) (*engine.Graph, []*groupable) {
			var vs []engine.Vertex
			var fs []*groupable
			for _, n := range []string{"a", "b", "c"} {
				f := &groupable{fake: newFake(rec, n), key: "k"}
				fs = append(fs, f)
				vs = append(vs, engine.Vertex{ID: id(n), Res: f, Meta: engine.Meta{NoAutoGroup: !grouped}})
			}
			return engine.AutoGroup(graphOfVertices(t, vs)), fs
		}
		g, fs := mk(true)
		if g.Len() != 1 {
			t.Fatalf("%d vertices, want one group", g.Len())
		}
		r := start(t, g, func(c *engineConfig) { c.ConvergedTimeout = 0 })
		synctest.Wait()
		for _, f := range fs {
			checks(t, map[*fake]int{f.fake: 1})
		}
		fs[1].event() // a member's event runs the group
		synctest.Wait()
		for _, f := range fs {
			checks(t, map[*fake]int{f.fake: 2})
		}
		// The same grouped graph again: the running group is kept.
		g, same := mk(true)
		r.graphs <- g
		synctest.Wait()
		for _, f := range same {
			if f.inits.Load() != 0 {
				t.Error("an unchanged group was replaced")
			}
		}
		for i := range 6 {
			g, fs = mk(i%2 == 1)
			r.graphs <- g
			synctest.Wait()
			for _, f := range fs {
				checks(t, map[*fake]int{f.fake: 1})
			}
		}
		if st, _ := r.lastStatus(); !st.Converged || len(st.Failed) != 0 {
			t.Errorf("status %+v", st)
		}
	})
}

// batcher is a groupable fake that applies its whole group at once.
type batcher struct {
	*groupable
	mu    sync.Mutex
	calls [][]string // the members of each CheckApplyGroup
}

func (b *batcher) CheckApplyGroup(ctx context.Context, apply bool, members []engine.Res) (bool, error) {
	var names []string
	for _, m := range members {
		names = append(names, m.(*batcher).name)
	}
	b.mu.Lock()
	b.calls = append(b.calls, names)
	b.mu.Unlock()
	return true, nil
}

// A group whose first member applies groups (pkg: one package transaction)
// gets one CheckApplyGroup with every member instead of each member's
// CheckApply.
func TestGroupApplierAppliesTheWholeGroupAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		var vs []engine.Vertex
		var bs []*batcher
		for _, n := range []string{"a", "b", "c"} {
			b := &batcher{groupable: &groupable{fake: newFake(rec, n), key: "k"}}
			bs = append(bs, b)
			vs = append(vs, engine.Vertex{ID: id(n), Res: b})
		}
		g := engine.AutoGroup(graphOfVertices(t, vs))
		if g.Len() != 1 {
			t.Fatalf("%d vertices, want one group", g.Len())
		}
		r := start(t, g, nil)
		synctest.Wait()
		bs[0].mu.Lock()
		calls := slices.Clone(bs[0].calls)
		bs[0].mu.Unlock()
		if len(calls) != 1 || !slices.Equal(calls[0], []string{"a", "b", "c"}) {
			t.Errorf("CheckApplyGroup calls %v, want one with a, b and c", calls)
		}
		for _, b := range bs {
			checks(t, map[*fake]int{b.fake: 0})
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// NoAutoGroup keeps vertices apart even when every candidate has it, so
// that their metaparameters match.
func TestNoAutoGroupOnEveryVertexKeepsThemApart(t *testing.T) {
	rec := newRecorder()
	mk := func(name string) engine.Vertex {
		return engine.Vertex{ID: id(name), Res: &groupable{fake: newFake(rec, name), key: "k"},
			Meta: engine.Meta{NoAutoGroup: true}}
	}
	if n := engine.AutoGroup(graphOfVertices(t, []engine.Vertex{mk("a"), mk("b")})).Len(); n != 2 {
		t.Errorf("%d vertices after AutoGroup, want 2: vertices with NoAutoGroup were grouped", n)
	}
}

// Vertices of one kind, depth and group key merge only with those of the
// same metaparameters (semaphores apart), however they interleave.
func TestAutoGroupMergesOnlyVerticesOfTheSameMetaparameters(t *testing.T) {
	rec := newRecorder()
	mk := func(name string) *groupable { return &groupable{fake: newFake(rec, name), key: "k"} }
	three, five := engine.Meta{Retry: 3}, engine.Meta{Retry: 5}
	g := graphOfVertices(t, []engine.Vertex{
		{ID: id("a"), Res: mk("a"), Meta: three},
		{ID: id("c"), Res: mk("c"), Meta: five},
		{ID: id("b"), Res: mk("b"), Meta: engine.Meta{Retry: 3, Sema: []string{"s"}}},
		{ID: id("e"), Res: mk("e"), Meta: five},
		{ID: id("f"), Res: mk("f"), Meta: engine.Meta{Retry: 5, Delay: 1}},
	})
	got := engine.AutoGroup(g)
	var ids []string
	for _, v := range got.Vertices() {
		ids = append(ids, v.ID.Name)
	}
	if !slices.Equal(ids, []string{"a", "c", "f"}) {
		t.Fatalf("vertices %v, want a (a, b), c (c, e) and f alone", ids)
	}
	for name, want := range map[string][]string{"a": {"a", "b"}, "c": {"c", "e"}} {
		v, _ := got.Vertex(id(name))
		m, ok := v.Res.(interface{ Members() []engine.ID })
		if !ok {
			t.Fatalf("%s is %T, not a group", name, v.Res)
		}
		var names []string
		for _, mid := range m.Members() {
			names = append(names, mid.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("group %s has %v, want %v", name, names, want)
		}
	}
}
