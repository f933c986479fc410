package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Grouper is implemented by resources that can merge with others of their
// kind into one vertex (mgmt's autogroup). Resources with the same non-empty
// GroupKey may be grouped.
type Grouper interface {
	GroupKey() string
}

// GroupApplier is implemented by groupable resources that check and apply
// a whole group at once (pkg: one package transaction for all its
// members). A group whose first member is a GroupApplier calls its
// CheckApplyGroup with every member, the first included, instead of each
// member's CheckApply.
type GroupApplier interface {
	CheckApplyGroup(ctx context.Context, apply bool, members []Res) (checkOK bool, err error)
}

// AutoGroup returns g with groupable vertices merged: vertices with the
// same GroupKey and metaparameters (semaphores apart) and no path between
// them become one vertex that runs each member in turn. Edges to and from
// members become edges of the group, keeping notify; the group holds the
// union of the members' semaphores. Vertices with meta NoAutoGroup, and
// those at either end of a send/recv edge, are left alone.
//
// Two vertices at the same depth (the longest path from a root) can have
// no path between them, and merging only such vertices cannot create a
// cycle; that is the rule used. It is linear in the size of the graph and
// deterministic. The group takes the ID of its first member in sorted order.
// A graph with nothing to group is returned as it is.
//
// A group is one vertex: a refresh delivered to it reaches every member, and
// a retry after one member failed runs them all again. That suits the kinds
// that group today (noop, print); a kind whose CheckApply is costly should
// say so in its GroupKey before it groups.
func AutoGroup(g *Graph) *Graph {
	depth, ok := g.depths()
	if !ok {
		return g // cyclic: Validate will say so
	}
	groupOf, merged := g.groups(g.groupBuckets(depth))
	if len(merged) == 0 {
		return g
	}
	return g.regrouped(groupOf, merged)
}

// groupBuckets sorts the vertices that may be grouped into buckets of
// vertices that may merge: the same kind, depth, GroupKey and
// metaparameters (semaphores apart). It returns the buckets, each a list
// of indexes into g.vertices, in the order of their first vertex.
func (g *Graph) groupBuckets(depth []int) [][]int {
	keyed := map[ID]bool{}
	for _, e := range g.edges {
		if len(e.Keys) > 0 {
			keyed[e.From], keyed[e.To] = true, true
		}
	}
	type near struct { // what a bucket's vertices share, metaparameters apart
		kind, key string
		depth     int
	}
	index := map[near][]int{} // the buckets of each, by index
	var buckets [][]int
	for i, v := range g.vertices {
		gr, ok := v.Res.(Grouper)
		if !ok || v.Meta.NoAutoGroup || keyed[v.ID] {
			continue
		}
		key := gr.GroupKey()
		if key == "" {
			continue
		}
		k := near{kind: v.ID.Kind, key: key, depth: depth[i]}
		j := slices.IndexFunc(index[k], func(b int) bool {
			return sameGroupMeta(g.vertices[buckets[b][0]].Meta, v.Meta)
		})
		if j < 0 {
			index[k] = append(index[k], len(buckets))
			buckets = append(buckets, []int{i})
			continue
		}
		b := index[k][j]
		buckets[b] = append(buckets[b], i)
	}
	return buckets
}

// sameGroupMeta says whether vertices of metaparameters a and b may be
// grouped: the same metaparameters, semaphores apart.
func sameGroupMeta(a, b Meta) bool {
	a.Sema, b.Sema = nil, nil
	return reflect.DeepEqual(a, b)
}

// groups makes a group of each bucket with two vertices or more. It
// returns, for each grouped vertex, the ID of its group (its first member
// in sorted order), and each group by that ID.
func (g *Graph) groups(buckets [][]int) (groupOf map[ID]ID, merged map[ID]*group) {
	groupOf, merged = map[ID]ID{}, map[ID]*group{}
	for _, members := range buckets {
		if len(members) < 2 {
			continue
		}
		grp := &group{}
		for _, i := range members {
			grp.members = append(grp.members, g.vertices[i])
		}
		slices.SortFunc(grp.members, func(a, b Vertex) int { return compareIDs(a.ID, b.ID) })
		gid := grp.members[0].ID
		for _, m := range grp.members {
			groupOf[m.ID] = gid
		}
		merged[gid] = grp
	}
	return groupOf, merged
}

// regrouped returns a copy of g with each group in place of its members:
// the group takes the place of its first member in g's order, with that
// member's metaparameters and the union of every member's semaphores.
// Edges to and from members become edges of the group; duplicates merge,
// keeping notify.
func (g *Graph) regrouped(groupOf map[ID]ID, merged map[ID]*group) *Graph {
	out := NewGraph(g.Name)
	for _, v := range g.vertices {
		gid, grouped := groupOf[v.ID]
		switch {
		case !grouped:
			_ = out.AddVertex(v)
		case gid == v.ID:
			grp := merged[gid]
			meta := v.Meta
			meta.Sema = nil
			for _, m := range grp.members {
				meta.Sema = append(meta.Sema, m.Meta.Sema...)
			}
			slices.Sort(meta.Sema)
			meta.Sema = slices.Compact(meta.Sema)
			_ = out.AddVertex(Vertex{ID: gid, Res: grp, Meta: meta})
		}
	}
	to := func(id ID) ID {
		if gid, ok := groupOf[id]; ok {
			return gid
		}
		return id
	}
	for _, e := range g.edges {
		e.From, e.To = to(e.From), to(e.To)
		_ = out.AddEdge(e) // merges duplicates, keeping notify
	}
	return out
}

// depths returns each vertex's depth: the length of the longest path from a
// vertex with no parents. ok is false if the graph has a cycle.
func (g *Graph) depths() (depth []int, ok bool) {
	n := len(g.vertices)
	out := g.adjacency()
	indeg := make([]int, n)
	for _, targets := range out {
		for _, t := range targets {
			indeg[t]++
		}
	}
	depth = make([]int, n)
	queue := make([]int, 0, n)
	for i := range n {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	for i := 0; i < len(queue); i++ {
		v := queue[i]
		for _, w := range out[v] {
			depth[w] = max(depth[w], depth[v]+1)
			if indeg[w]--; indeg[w] == 0 {
				queue = append(queue, w)
			}
		}
	}
	return depth, len(queue) == n
}

// compareIDs orders IDs by kind, then name.
func compareIDs(a, b ID) int {
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// group is the resource of a grouped vertex: it runs its members' Watches
// together and their CheckApplies one after the other.
type group struct {
	members []Vertex

	rt       *Runtime
	mu       sync.Mutex
	reported []bool // member i's Watch is running
	waiting  int    // members not yet running
}

// Members returns the IDs of the grouped resources.
func (g *group) Members() []ID {
	ids := make([]ID, len(g.members))
	for i, m := range g.members {
		ids[i] = m.ID
	}
	return ids
}

func (g *group) Validate() error {
	var errs []error
	for _, m := range g.members {
		if err := m.Res.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Init gives each member a runtime of its own that reports through the
// group's: the group is running once every member is, and any member's
// later event is the group's.
func (g *group) Init(rt *Runtime) error {
	g.rt = rt
	g.reported = make([]bool, len(g.members))
	g.waiting = len(g.members)
	for i, m := range g.members {
		mrt := &Runtime{
			ID:       m.ID,
			Hostname: rt.Hostname,
			World:    rt.World,
			Logger:   rt.Logger.With("member", m.ID.String()),
			Running:  func() { g.memberRunning(i, true) },
			Event:    func() { g.memberEvent(i) },
			Refresh:  rt.Refresh,
			Send:     func(map[string]any) error { return errors.New("send: grouped resources cannot send") },
			Recv:     func() map[string]bool { return nil },
			Fences:   rt.Fences, // the group's slots, the union of its members' tags
		}
		if err := safeInit(m.Res, mrt); err != nil {
			for _, done := range g.members[:i] {
				_ = safeCleanup(done.Res)
			}
			return fmt.Errorf("%s: %w", m.ID, err)
		}
	}
	return nil
}

// memberRunning records that member i's Watch is running. The last member
// to get there makes the group running; a member that says it again (and
// asked for it with again) reports an event, as for any resource.
func (g *group) memberRunning(i int, again bool) {
	g.mu.Lock()
	first := !g.reported[i]
	if first {
		g.reported[i] = true
		g.waiting--
	}
	all := g.waiting == 0
	g.mu.Unlock()
	switch {
	case first && all:
		g.rt.Running()
	case !first && again:
		g.rt.Event()
	}
}

// memberEvent passes on an event from member i once the group is running;
// before that the group has its first CheckApply to come anyway.
func (g *group) memberEvent(i int) {
	g.mu.Lock()
	running := g.waiting == 0
	g.mu.Unlock()
	if running {
		g.rt.Event()
	}
}

// Watch runs every member's Watch until ctx is done. A member whose Watch
// returns nil early has nothing more to watch (and counts as running); a
// member's error ends the group's Watch.
func (g *group) Watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type exit struct {
		i   int
		err error
	}
	exits := make(chan exit, len(g.members))
	for i, m := range g.members {
		go func() { exits <- exit{i, safeWatch(ctx, m.Res)} }()
	}
	var first error
	for range g.members {
		e := <-exits
		switch {
		case ctx.Err() != nil:
		case e.err != nil:
			if first == nil {
				first = fmt.Errorf("%s: %w", g.members[e.i].ID, e.err)
				cancel()
			}
		default:
			g.memberRunning(e.i, false)
		}
	}
	return first
}

// CheckApply runs each member's CheckApply in order, all of them even if one
// fails, or the first member's CheckApplyGroup if it has one.
func (g *group) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if ga, ok := g.members[0].Res.(GroupApplier); ok {
		members := make([]Res, len(g.members))
		for i, m := range g.members {
			members[i] = m.Res
		}
		return ga.CheckApplyGroup(ctx, apply, members)
	}
	allOK := true
	var errs []error
	for _, m := range g.members {
		ok, err := safeCheckApply(ctx, m.Res, apply)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
			continue
		}
		allOK = allOK && ok
	}
	return allOK && len(errs) == 0, errors.Join(errs...)
}

func (g *group) Cleanup() error {
	var errs []error
	for _, m := range g.members {
		if err := safeCleanup(m.Res); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
		}
	}
	return errors.Join(errs...)
}

// sameGroup reports whether two groups hold the same members with the same
// parameters.
func sameGroup(a, b *group) bool {
	return slices.EqualFunc(a.members, b.members, func(x, y Vertex) bool {
		return x.ID == y.ID && x.Meta.Equal(y.Meta) && sameParams(x.Res, y.Res, nil)
	})
}
