package engine

import (
	"fmt"
	"path"
	"slices"
)

// Provider is implemented by resources that other resources can depend on
// by what they manage rather than by an explicit edge: a file resource
// provides "path:/etc/app".
type Provider interface {
	Provides() []string
}

// Requirer is implemented by resources that need what providers provide: a
// file requires its parent directories ("path:/etc"), an exec its working
// directory.
type Requirer interface {
	Requires() []string
}

// AutoEdges adds an edge from every provider to every vertex that requires
// what it provides, unless the requiring vertex has meta NoAutoEdge. Edges
// that already exist are left alone; an edge that would close a cycle is not
// added and is reported in skipped instead. Vertices and requirements are
// visited in a fixed order, so the result does not depend on map order.
func AutoEdges(g *Graph) (added []Edge, skipped []error) {
	providers := map[string][]ID{}
	for _, v := range g.vertices {
		if p, ok := v.Res.(Provider); ok {
			for _, uid := range p.Provides() {
				providers[uid] = append(providers[uid], v.ID)
			}
		}
	}
	if len(providers) == 0 {
		return nil, nil
	}
	for uid := range providers {
		sortIDs(providers[uid])
	}
	out := g.adjacency()
	for _, v := range g.vertices {
		r, ok := v.Res.(Requirer)
		if !ok || v.Meta.NoAutoEdge {
			continue
		}
		for _, uid := range r.Requires() {
			for _, from := range providers[uid] {
				if from == v.ID {
					continue
				}
				if _, exists := g.edgeIdx[[2]ID{from, v.ID}]; exists {
					continue
				}
				if g.reaches(out, v.ID, from) {
					skipped = append(skipped, &EdgeError{From: from, To: v.ID,
						Err: fmt.Errorf("automatic edge for %q not added: it would close a cycle", uid)})
					continue
				}
				e := Edge{From: from, To: v.ID}
				if err := g.AddEdge(e); err != nil {
					skipped = append(skipped, err)
					continue
				}
				fi := g.index[from]
				out[fi] = append(out[fi], g.index[v.ID])
				added = append(added, e)
			}
		}
	}
	return added, skipped
}

// adjacency returns the graph's out-edges by vertex index.
func (g *Graph) adjacency() [][]int {
	out := make([][]int, len(g.vertices))
	for _, e := range g.edges {
		f := g.index[e.From]
		out[f] = append(out[f], g.index[e.To])
	}
	return out
}

// reaches reports whether there is a path from a to b.
func (g *Graph) reaches(out [][]int, a, b ID) bool {
	start, target := g.index[a], g.index[b]
	seen := map[int]bool{start: true}
	stack := []int{start}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if v == target {
			return true
		}
		for _, w := range out[v] {
			if !seen[w] {
				seen[w] = true
				stack = append(stack, w)
			}
		}
	}
	return false
}

// PathUIDs returns the Provides/Requires names for a filesystem path: "path:"
// and the cleaned absolute path, for p and then for each of its parents
// below the root.
func PathUIDs(p string) (self string, parents []string) {
	clean := path.Clean(p)
	self = "path:" + clean
	for dir := path.Dir(clean); dir != "/" && dir != "."; dir = path.Dir(dir) {
		parents = append(parents, "path:"+dir)
	}
	return self, slices.Clip(parents)
}
