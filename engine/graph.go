package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Vertex is one resource in a graph.
type Vertex struct {
	ID   ID
	Res  Res
	Meta Meta
}

// Edge orders two vertices: From is applied before To. With Notify set, a
// CheckApply of From that changed something delivers a refresh to To. Each
// of Keys sends one of From's output values into one of To's parameters.
type Edge struct {
	From   ID
	To     ID
	Notify bool
	Keys   []KeyMap
}

// KeyMap sends the value From publishes under Send into the parameter of To
// whose YAML key is Recv.
type KeyMap struct {
	Send string
	Recv string
}

// Graph is a set of vertices and the edges between them. Build it with
// AddVertex and AddEdge, then check it with Validate. A graph handed to the
// engine must not be changed afterwards.
type Graph struct {
	Name string

	vertices []Vertex
	index    map[ID]int
	edges    []Edge
	edgeIdx  map[[2]ID]int
}

// NewGraph returns an empty graph.
func NewGraph(name string) *Graph {
	return &Graph{Name: name, index: map[ID]int{}, edgeIdx: map[[2]ID]int{}}
}

// Grow makes room for vertices and edges more, so that a frontend that
// knows the size of the graph it builds does not regrow its indexes.
func (g *Graph) Grow(vertices, edges int) {
	g.vertices = slices.Grow(g.vertices, vertices)
	g.edges = slices.Grow(g.edges, edges)
	index := make(map[ID]int, len(g.index)+vertices)
	maps.Copy(index, g.index)
	edgeIdx := make(map[[2]ID]int, len(g.edgeIdx)+edges)
	maps.Copy(edgeIdx, g.edgeIdx)
	g.index, g.edgeIdx = index, edgeIdx
}

// ErrDuplicate is returned when a vertex ID is added twice.
var ErrDuplicate = errors.New("duplicate resource")

// ErrNoVertex is returned when an edge names a vertex the graph lacks.
var ErrNoVertex = errors.New("no such resource")

// AddVertex adds a vertex. Its ID must be new to the graph.
func (g *Graph) AddVertex(v Vertex) error {
	if v.Res == nil {
		return fmt.Errorf("%s: nil resource", v.ID)
	}
	if _, dup := g.index[v.ID]; dup {
		return fmt.Errorf("%s: %w", v.ID, ErrDuplicate)
	}
	g.index[v.ID] = len(g.vertices)
	g.vertices = append(g.vertices, v)
	return nil
}

// AddEdge adds an edge between two vertices already in the graph. Adding the
// same pair twice keeps one edge, which notifies if either did.
func (g *Graph) AddEdge(e Edge) error {
	for _, end := range []ID{e.From, e.To} {
		if _, ok := g.index[end]; !ok {
			return fmt.Errorf("edge %s -> %s: %s: %w", e.From, e.To, end, ErrNoVertex)
		}
	}
	key := [2]ID{e.From, e.To}
	if i, ok := g.edgeIdx[key]; ok {
		g.edges[i].Notify = g.edges[i].Notify || e.Notify
		for _, k := range e.Keys {
			if !slices.Contains(g.edges[i].Keys, k) {
				g.edges[i].Keys = append(g.edges[i].Keys, k)
			}
		}
		return nil
	}
	e.Keys = slices.Clone(e.Keys)
	g.edgeIdx[key] = len(g.edges)
	g.edges = append(g.edges, e)
	return nil
}

// Len returns the number of vertices.
func (g *Graph) Len() int { return len(g.vertices) }

// Vertices returns the vertices in the order they were added. The slice
// must not be modified.
func (g *Graph) Vertices() []Vertex { return g.vertices }

// Edges returns the edges in the order they were added. The slice must not
// be modified.
func (g *Graph) Edges() []Edge { return g.edges }

// Vertex returns the vertex with the given ID.
func (g *Graph) Vertex(id ID) (Vertex, bool) {
	i, ok := g.index[id]
	if !ok {
		return Vertex{}, false
	}
	return g.vertices[i], true
}

// VertexError is a problem with one vertex.
type VertexError struct {
	ID  ID
	Err error
}

func (e *VertexError) Error() string { return e.ID.String() + ": " + e.Err.Error() }
func (e *VertexError) Unwrap() error { return e.Err }

// EdgeError is a problem with the edge From -> To.
type EdgeError struct {
	From, To ID
	Err      error
}

func (e *EdgeError) Error() string {
	return fmt.Sprintf("edge %s -> %s: %v", e.From, e.To, e.Err)
}
func (e *EdgeError) Unwrap() error { return e.Err }

// CycleError reports a cycle: each vertex in Cycle has an edge to the next,
// and the last has one to the first.
type CycleError struct {
	Cycle []ID
}

func (e *CycleError) Error() string {
	parts := make([]string, 0, len(e.Cycle)+1)
	for _, id := range e.Cycle {
		parts = append(parts, id.String())
	}
	parts = append(parts, e.Cycle[0].String())
	return "cycle: " + strings.Join(parts, " -> ")
}

// Validate checks every vertex's metaparameters, that semaphores with the
// same id agree on their count, that no two vertices manage the same thing
// (a *ConflictError for each pair that does; see Claimer), and that the
// graph is acyclic (returning a *CycleError naming one cycle if it is not).
func (g *Graph) Validate() error {
	var errs []error
	semaAt := map[string]struct {
		count int64
		id    ID
	}{}
	for _, v := range g.vertices {
		if err := v.Meta.Validate(); err != nil {
			errs = append(errs, &VertexError{ID: v.ID, Err: fmt.Errorf("meta: %w", err)})
			continue
		}
		for _, tag := range v.Meta.Sema {
			sid, count, _ := ParseSema(tag)
			if prev, ok := semaAt[sid]; ok && prev.count != count {
				errs = append(errs, &VertexError{ID: v.ID, Err: fmt.Errorf("meta: sema %q: %s holds semaphore %q with count %d",
					tag, prev.id, sid, prev.count)})
				continue
			}
			semaAt[sid] = struct {
				count int64
				id    ID
			}{count, v.ID}
		}
	}
	errs = append(errs, g.conflicts()...)
	errs = append(errs, g.checkSendRecv()...)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c := g.findCycle(); c != nil {
		return &CycleError{Cycle: c}
	}
	return nil
}

// findCycle runs an iterative depth-first search and returns the vertices of
// the first cycle it meets, or nil. It is O(V+E) and uses no recursion, so
// long chains do not grow the stack.
func (g *Graph) findCycle() []ID {
	n := len(g.vertices)
	out := make([][]int, n)
	for _, e := range g.edges {
		f, t := g.index[e.From], g.index[e.To]
		out[f] = append(out[f], t)
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, n)
	type frame struct{ v, next int }
	var stack []frame
	for root := range n {
		if color[root] != white {
			continue
		}
		stack = append(stack[:0], frame{v: root})
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(out[top.v]) {
				color[top.v] = black
				stack = stack[:len(stack)-1]
				continue
			}
			w := out[top.v][top.next]
			top.next++
			switch color[w] {
			case white:
				color[w] = grey
				stack = append(stack, frame{v: w})
			case grey:
				// w is on the stack: the cycle is w ... top.
				var cyc []ID
				for i := len(stack) - 1; i >= 0; i-- {
					cyc = append(cyc, g.vertices[stack[i].v].ID)
					if stack[i].v == w {
						break
					}
				}
				for i, j := 0, len(cyc)-1; i < j; i, j = i+1, j-1 {
					cyc[i], cyc[j] = cyc[j], cyc[i]
				}
				return cyc
			}
		}
	}
	return nil
}
