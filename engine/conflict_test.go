package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
)

// claimer is a fake resource that claims what it is told to, and groups
// with others of the same group key when that is set.
type claimer struct {
	*fake
	claims []engine.Claim
	key    string
}

func (c *claimer) Claims() []engine.Claim { return c.claims }
func (c *claimer) GroupKey() string       { return c.key }

func claiming(name string, claims ...engine.Claim) engine.Vertex {
	return engine.Vertex{ID: id(name), Res: &claimer{fake: newFake(newRecorder(), name), claims: claims}}
}

func path(name string) engine.Claim { return engine.Claim{Space: "path", Name: name} }

func tree(name string) engine.Claim {
	return engine.Claim{Space: "path", Name: name, Tree: true, Why: "it is declared absent"}
}

// conflictsOf returns the *ConflictErrors of g.Validate, failing the test
// on any other error.
func conflictsOf(t *testing.T, g *engine.Graph) []*engine.ConflictError {
	t.Helper()
	err := g.Validate()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []*engine.ConflictError
	for _, e := range errs {
		var ce *engine.ConflictError
		if !errors.As(e, &ce) || !errors.Is(e, engine.ErrConflict) {
			t.Fatalf("Validate: unexpected error %v", e)
		}
		out = append(out, ce)
	}
	return out
}

// Two resources that manage one thing undo each other's work for ever, so
// a graph holding them is refused, naming both.
func TestTwoVerticesClaimingOneThingAreRefused(t *testing.T) {
	g := graphOfVertices(t, []engine.Vertex{
		claiming("a", path("/srv/x")),
		claiming("b", path("/srv/y")),
		claiming("c", path("/srv/x")),
		claiming("d", engine.Claim{Space: "other", Name: "/srv/x"}), // another space: no clash
	})
	got := conflictsOf(t, g)
	if len(got) != 1 {
		t.Fatalf("got %d conflicts %v, want 1", len(got), got)
	}
	if got[0].First != id("a") || got[0].Second != id("c") {
		t.Errorf("conflict between %s and %s, want fake[a] and fake[c]", got[0].First, got[0].Second)
	}
	if want := "fake[c]: manages path /srv/x, which fake[a] manages too"; !strings.HasPrefix(got[0].Error(), want) {
		t.Errorf("got %q, want it to start with %q", got[0].Error(), want)
	}
}

// A claim on a whole tree (a file declared absent) collides with any claim
// below it, whichever of the two comes first, but not with its neighbours.
func TestClaimUnderAnotherResourcesTreeIsRefused(t *testing.T) {
	g := graphOfVertices(t, []engine.Vertex{
		claiming("inside", path("/srv/app/conf")),
		claiming("gone", tree("/srv/app")),
		claiming("deeper", path("/srv/app/a/b/c")),
		claiming("beside", path("/srv/apple")),
		claiming("above", path("/srv")),
	})
	got := conflictsOf(t, g)
	var pairs []string
	for _, c := range got {
		pairs = append(pairs, c.First.Name+"-"+c.Second.Name)
	}
	if want := "inside-gone gone-deeper"; strings.Join(pairs, " ") != want {
		t.Fatalf("conflicting pairs %v, want %s", pairs, want)
	}
	for i, want := range []string{
		"fake[gone]: manages path /srv/app with everything under it (it is declared absent), but fake[inside] manages path /srv/app/conf, under it",
		"fake[deeper]: manages path /srv/app/a/b/c, under path /srv/app, which fake[gone] manages with everything under it",
	} {
		if !strings.HasPrefix(got[i].Error(), want) {
			t.Errorf("got %q, want it to start with %q", got[i].Error(), want)
		}
	}
}

// A resource merged into a group still claims what it manages, so graphs
// grouped before they reach the engine get the same check.
func TestGroupedVertexKeepsItsClaims(t *testing.T) {
	grouped := func(name string, c engine.Claim) engine.Vertex {
		v := claiming(name, c)
		v.Res.(*claimer).key = "k"
		return v
	}
	g := graphOfVertices(t, []engine.Vertex{
		grouped("a", path("/x")),
		grouped("b", path("/y")),
		claiming("c", path("/y")),
	})
	g = engine.AutoGroup(g)
	if g.Len() != 2 {
		t.Fatalf("grouping left %d vertices, want 2", g.Len())
	}
	got := conflictsOf(t, g)
	if len(got) != 1 || got[0].First != id("a") || got[0].Second != id("c") {
		t.Errorf("got conflicts %v, want the group fake[a] against fake[c]", got)
	}
}

// A resource that claims one thing twice does not conflict with itself.
func TestVertexDoesNotConflictWithItself(t *testing.T) {
	g := graphOfVertices(t, []engine.Vertex{claiming("a", path("/x"), tree("/x"), path("/x/y"))})
	if got := conflictsOf(t, g); len(got) != 0 {
		t.Errorf("got conflicts %v, want none", got)
	}
}
