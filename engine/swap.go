package engine

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// swap replaces the running graph with g. It runs only when no CheckApply is
// in flight. Vertices whose kind, name and parameters are unchanged keep
// their resource, Watch and state; the others are stopped or started.
func (s *scheduler) swap(g *Graph) {
	next := make(map[ID]*node, g.Len())
	var added, removed []*node
	for _, v := range g.Vertices() {
		old, ok := s.nodes[v.ID]
		if ok && old.meta == v.Meta && sameParams(old.res, v.Res) && !(old.dead && v.Meta.Rewatch) {
			next[v.ID] = old
			continue
		}
		if ok {
			removed = append(removed, old)
		}
		n := &node{id: v.ID, res: v.Res, meta: v.Meta, dirty: true}
		next[v.ID] = n
		added = append(added, n)
	}
	for id, old := range s.nodes {
		if _, kept := g.Vertex(id); !kept {
			removed = append(removed, old)
		}
	}

	s.stop(removed)
	for _, n := range removed {
		n.removed = true
		if !n.started {
			s.unstarted--
		}
	}

	// Rebuild the edges of every vertex in the new graph.
	for _, n := range next {
		n.parents, n.children, n.notify = n.parents[:0], n.children[:0], n.notify[:0]
		n.blockers, n.busy, n.queued = 0, false, false
	}
	for _, e := range g.Edges() {
		from, to := next[e.From], next[e.To]
		from.children = append(from.children, to)
		to.parents = append(to.parents, from)
		if e.Notify {
			from.notify = append(from.notify, to)
		}
	}
	s.nodes = next
	s.ready = s.ready[:0]

	for _, n := range added {
		s.unstarted++
		s.startWatch(n)
	}

	// Recompute busy bits and blocker counts in topological order.
	for _, n := range topoOrder(g, next) {
		for _, p := range n.parents {
			if p.busy {
				n.blockers++
			}
		}
		n.busy = n.dirty || n.running || n.failed() || n.blockers > 0
		if s.runnable(n) {
			n.queued = true
			s.ready = append(s.ready, n)
		}
	}
	s.hasGraph = true
	s.conv.changed(time.Now())
	s.log.Info("graph swapped in", "graph", g.Name, "vertices", g.Len(),
		"added", len(added), "removed", len(removed), "kept", g.Len()-len(added))
}

// startWatch initialises n's resource and starts its Watch goroutine. An Init
// failure kills the vertex.
func (s *scheduler) startWatch(n *node) {
	rt := &Runtime{
		ID:       n.id,
		Hostname: s.cfg.Hostname,
		Logger:   s.log.With("resource", n.id.String()),
		Running:  func() { s.inbox.signal(n, sigRunning) },
		Event:    func() { s.inbox.signal(n, sigEvent) },
		Refresh:  n.curRefresh.Load,
	}
	n.watchDone = make(chan struct{})
	if err := safeInit(n.res, rt); err != nil {
		close(n.watchDone)
		n.watchCancel = func() {}
		n.initFailed = true
		s.kill(n, "init failed", err)
		return
	}
	ctx, cancel := context.WithCancel(s.watchCtx)
	n.watchCancel = cancel
	go func() {
		defer close(n.watchDone)
		err := safeWatch(ctx, n.res)
		if ctx.Err() != nil {
			return // stopped by the engine: nothing to report
		}
		n.watchErr = err
		s.inbox.signal(n, sigWatchExit)
	}()
}

// stop cancels the Watch of each node, waits for them, then calls their
// Cleanup. A Watch that has not returned after StopTimeout (or once Abort
// is called) is left behind, logged, and its Cleanup skipped.
func (s *scheduler) stop(nodes []*node) {
	for _, n := range nodes {
		n.watchCancel()
	}
	var deadline <-chan time.Time
	abort := s.abort // a swap's wait gives up at once on Abort; Run's final stop does not
	if s.aborted {
		abort = nil
	}
	for _, n := range nodes {
		select {
		case <-n.watchDone:
		default:
			if deadline == nil {
				deadline = time.After(s.cfg.StopTimeout)
			}
			select {
			case <-n.watchDone:
			case <-deadline:
				s.log.Error("watch ignored cancellation; leaving it behind", "resource", n.id.String())
				continue
			case <-abort:
				abort = nil
				deadline = time.After(0) // stop waiting for anything still running
				s.log.Error("watch ignored cancellation; leaving it behind", "resource", n.id.String())
				continue
			}
		}
		if n.initFailed {
			continue
		}
		if err := safeCleanup(n.res); err != nil {
			s.log.Error("cleanup failed", "resource", n.id.String(), "err", err)
		}
	}
}

// stopAll stops every vertex of the running graph.
func (s *scheduler) stopAll() {
	all := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		all = append(all, n)
	}
	s.stop(all)
	for _, n := range all {
		n.removed = true
	}
	s.nodes = nil
}

// topoOrder returns the nodes of g in an order where every vertex comes after
// its parents (Kahn's algorithm).
func topoOrder(g *Graph, nodes map[ID]*node) []*node {
	indeg := make(map[*node]int, len(nodes))
	for _, n := range nodes {
		indeg[n] = len(n.parents)
	}
	order := make([]*node, 0, len(nodes))
	for _, v := range g.Vertices() {
		if n := nodes[v.ID]; indeg[n] == 0 {
			order = append(order, n)
		}
	}
	for i := 0; i < len(order); i++ {
		for _, c := range order[i].children {
			indeg[c]--
			if indeg[c] == 0 {
				order = append(order, c)
			}
		}
	}
	return order
}

// sameParams reports whether two resources are the same resource: the same
// value, or the same type with equal exported fields. Unexported fields hold
// run-time state and are ignored.
func sameParams(a, b Res) bool {
	if a == b {
		return true
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() {
		return false
	}
	for va.Kind() == reflect.Pointer {
		if va.IsNil() || vb.IsNil() {
			return va.IsNil() == vb.IsNil()
		}
		va, vb = va.Elem(), vb.Elem()
	}
	if va.Kind() != reflect.Struct {
		return reflect.DeepEqual(va.Interface(), vb.Interface())
	}
	t := va.Type()
	for i := range t.NumField() {
		if !t.Field(i).IsExported() {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// String helps debugging.
func (n *node) String() string {
	return fmt.Sprintf("%s{started=%t dirty=%t running=%t failed=%t blockers=%d}",
		n.id, n.started, n.dirty, n.running, n.failed(), n.blockers)
}
