package engine

import (
	"errors"
	"fmt"
	"strings"
)

// Claimer is implemented by resources that manage something on the host
// which no other resource may manage too: two file resources on one path
// would undo each other's work on every run, for ever. Graph.Validate
// refuses a graph in which two vertices claim the same thing.
//
// Kinds that change nothing on the host (noop, print, timer, password) and
// kinds whose effects may legitimately overlap (exec: two commands may
// touch the same things, and running one twice is the user's choice) do
// not implement it.
type Claimer interface {
	// Claims names what the resource manages. It must not touch the host.
	Claims() []Claim
}

// Claim is one thing a resource manages.
type Claim struct {
	// Space is the kind of thing claimed, shared by every kind of resource
	// that can manage it: "path" for filesystem paths.
	Space string
	// Name identifies the thing within Space, in a canonical form (a
	// cleaned absolute path for "path"). Names are hierarchical, with "/"
	// separating the levels.
	Name string
	// Tree claims everything below Name as well: no other resource may
	// manage anything under it. A file declared absent claims its tree,
	// since whatever is under it goes with it.
	Tree bool
	// Why says, for a Tree claim, why nothing may be under Name, such as
	// "it is declared absent". It may be empty.
	Why string
}

func (c Claim) String() string { return c.Space + " " + c.Name }

// covers reports whether the tree claim c covers o, which lies under it.
func (c Claim) covers(o Claim) bool {
	if !c.Tree || c.Space != o.Space || len(o.Name) <= len(c.Name) {
		return false
	}
	prefix := c.Name
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return strings.HasPrefix(o.Name, prefix)
}

// ErrConflict is wrapped by every *ConflictError.
var ErrConflict = errors.New("two resources manage the same thing")

// ConflictError reports two vertices whose claims collide: both claim the
// same thing, or one claims a tree that holds what the other claims. First
// comes before Second in the graph's order.
type ConflictError struct {
	First, Second           ID
	FirstClaim, SecondClaim Claim
}

// Explain says what is wrong from Second's side, naming First as other.
func (e *ConflictError) Explain(other string) string {
	a, b := e.FirstClaim, e.SecondClaim
	switch {
	case a.covers(b):
		return fmt.Sprintf("manages %s, under %s %s, which %s manages %s; "+
			"both cannot hold at once: keep one", b, a.Space, a.Name, other, whole(a))
	case b.covers(a):
		return fmt.Sprintf("manages %s %s, but %s manages %s, under it; "+
			"both cannot hold at once: keep one", b, whole(b), other, a)
	}
	return fmt.Sprintf("manages %s, which %s manages too; "+
		"two resources managing one thing would undo each other's work on every run: keep one", b, other)
}

// whole describes a tree claim.
func whole(c Claim) string {
	if c.Why == "" {
		return "with everything under it"
	}
	return "with everything under it (" + c.Why + ")"
}

func (e *ConflictError) Error() string {
	return e.Second.String() + ": " + e.Explain(e.First.String())
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// claimsOf returns what a vertex claims; a group claims what its members do.
func claimsOf(res Res) []Claim {
	if g, ok := res.(*group); ok {
		var out []Claim
		for _, m := range g.members {
			out = append(out, claimsOf(m.Res)...)
		}
		return out
	}
	if c, ok := res.(Claimer); ok {
		return c.Claims()
	}
	return nil
}

// conflicts returns a *ConflictError for every pair of vertices whose claims
// collide, at most one per pair, in the graph's order. It looks up each
// claim and each of its ancestors in a map, so it costs O(claims x depth).
func (g *Graph) conflicts() []error {
	type owner struct {
		vertex int
		claim  Claim
	}
	type key struct{ space, name string }
	exact := map[key][]owner{}
	trees := map[key][]owner{}
	claims := make([][]Claim, len(g.vertices))
	for i, v := range g.vertices {
		claims[i] = claimsOf(v.Res)
		for _, c := range claims[i] {
			k := key{c.Space, c.Name}
			exact[k] = append(exact[k], owner{i, c})
			if c.Tree {
				trees[k] = append(trees[k], owner{i, c})
			}
		}
	}
	seen := map[[2]int]bool{}
	var errs []error
	report := func(i int, c Claim, o owner) {
		if o.vertex == i {
			return
		}
		first, second := owner{i, c}, o
		if o.vertex < i {
			first, second = o, owner{i, c}
		}
		pair := [2]int{first.vertex, second.vertex}
		if seen[pair] {
			return
		}
		seen[pair] = true
		errs = append(errs, &ConflictError{
			First: g.vertices[first.vertex].ID, Second: g.vertices[second.vertex].ID,
			FirstClaim: first.claim, SecondClaim: second.claim,
		})
	}
	for i := range g.vertices {
		for _, c := range claims[i] {
			for _, o := range exact[key{c.Space, c.Name}] {
				report(i, c, o)
			}
			for _, anc := range ancestors(c.Name) {
				for _, o := range trees[key{c.Space, anc}] {
					report(i, c, o)
				}
			}
		}
	}
	return errs
}

// ancestors returns the names above a hierarchical name, nearest first:
// "/a/b/c" gives "/a/b", "/a" and "/".
func ancestors(name string) []string {
	var out []string
	for i := len(name) - 1; i > 0; i-- {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	if len(name) > 1 && name[0] == '/' {
		out = append(out, "/")
	}
	return out
}
