package engine

import (
	"slices"
	"strings"
)

// GraphStatus is the running graph with the status of each vertex: what
// a picture of the graph needs.
type GraphStatus struct {
	// Snapshot has every vertex of the graph, with its state.
	Snapshot
	// Edges are the graph's edges, sorted by From, then To; each edge's
	// Keys are sorted by Send, then Recv.
	Edges []Edge
	// Members holds, for each vertex that is a group of resources (see
	// AutoGroup), the IDs of the resources it runs, sorted. A vertex of
	// one resource is not in it.
	Members map[ID][]ID
}

// GraphStatus returns the running graph and the status of its vertices,
// taken at one moment, so both describe the same graph. It costs what
// Snapshot does, plus a copy of the edges made outside the scheduler's
// lock; it is safe to call from any goroutine. Before the first graph it
// is empty.
func (e *Engine) GraphStatus() GraphStatus {
	snap, g := e.board.snapshotGraph()
	gs := GraphStatus{Snapshot: snap}
	if g == nil {
		return gs
	}
	gs.Edges = make([]Edge, len(g.Edges()))
	for i, ed := range g.Edges() {
		ed.Keys = slices.Clone(ed.Keys)
		slices.SortFunc(ed.Keys, func(a, b KeyMap) int {
			if c := strings.Compare(a.Send, b.Send); c != 0 {
				return c
			}
			return strings.Compare(a.Recv, b.Recv)
		})
		gs.Edges[i] = ed
	}
	slices.SortFunc(gs.Edges, func(a, b Edge) int {
		if c := compareIDs(a.From, b.From); c != 0 {
			return c
		}
		return compareIDs(a.To, b.To)
	})
	for _, v := range g.Vertices() {
		if grp, ok := v.Res.(*group); ok {
			if gs.Members == nil {
				gs.Members = map[ID][]ID{}
			}
			gs.Members[v.ID] = grp.Members()
		}
	}
	return gs
}
