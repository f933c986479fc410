package engine

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// swap replaces the running graph with the planned one. It runs when no
// vertex the plan replaces or removes has a CheckApply the swap waits for;
// kept vertices may be running. Kept vertices keep their resource, Watch
// and state; the others are stopped or started. The steps, in order: diff
// the new graph against the running one, stop the removed vertices, rewire
// the edges, start the added vertices with the refreshes and received
// values they carry over, and recount the blockers.
func (s *scheduler) swap(p *swapPlan) {
	began := time.Now()
	g := p.g
	inNext := graphIDs(g)
	next, added := s.diff(g, p.received)
	removed := p.doomed
	s.retire(removed, inNext)
	rewire(g, next)
	s.nodes = next
	s.ready = s.ready[:0]
	s.state.prune(func(id ID) bool { return inNext[id] })
	now := time.Now() // after stopping the removed vertices, which may take a while
	s.startAdded(added, removed, now)
	s.deliverMissedRefreshes(added)
	resendLastValues(next)
	s.recountBlockers(g, next)
	s.board.retain(g, next)
	for _, n := range next {
		s.markPublish(n)
	}
	s.hasGraph = true
	s.conv.changed(now)
	s.log.Info("graph swapped in", "graph", g.Name, "vertices", g.Len(),
		"added", len(added), "removed", len(removed), "kept", g.Len()-len(added))
	s.observeSwap(SwapEvent{Graph: g.Name, Duration: time.Since(began),
		Added: len(added), Removed: len(removed), Kept: g.Len() - len(added)})
}

// graphIDs returns the IDs in g, members of groups included: the IDs whose
// persisted state and retry counters outlive the swap.
func graphIDs(g *Graph) map[ID]bool {
	ids := map[ID]bool{}
	for _, v := range g.Vertices() {
		ids[v.ID] = true
		if grp, ok := v.Res.(*group); ok {
			for _, id := range grp.Members() {
				ids[id] = true
			}
		}
	}
	return ids
}

// diff maps each vertex of g to its node: the running one if the plan did
// not doom it (a kept vertex keeps its node, state and Watch), else a new,
// dirty node (added), which takes over the replaced node's pending refresh
// and received values (see carryOver). A replacement of a vertex whose
// CheckApply the swap abandoned waits for that call (predecessor).
func (s *scheduler) diff(g *Graph, received map[ID][]string) (next map[ID]*node, added []*node) {
	next = make(map[ID]*node, g.Len())
	for _, v := range g.Vertices() {
		old, ok := s.nodes[v.ID]
		if ok && !old.doomed {
			next[v.ID] = old
			continue
		}
		n := &node{id: v.ID, res: v.Res, meta: v.Meta, applyState: applyState{dirty: true}}
		if ok {
			if old.running {
				n.predecessor = old // abandoned: n waits for its CheckApply
			}
			carryOver(n, old, received[v.ID])
		}
		next[v.ID] = n
		added = append(added, n)
	}
	return next, added
}

// carryOver gives the replacement n of old what old had not consumed yet:
// a pending refresh outlives a change of parameters, and so do received
// values, for the parameters the new graph still receives (pending ones
// first, else the ones old held), so n gets them set before its first
// CheckApply.
func carryOver(n, old *node, received []string) {
	n.refresh = old.refresh
	for _, k := range received {
		if val, has := old.recvPending[k]; has {
			n.recvPending = setKey(n.recvPending, k, val)
		} else if val, has := old.recvLast[k]; has {
			n.recvPending = setKey(n.recvPending, k, val)
		}
	}
}

// retire stops the removed (doomed) vertices and takes them out of every
// count: it stops their Watch and cleans them up (see stop), marks them
// removed so their late signals and results are ignored, makes their
// timers stale and drops their waits from the count of waiting vertices.
// The persisted state and retry counters of the IDs not in the new graph
// (inNext) are forgotten; those of replaced vertices are kept.
func (s *scheduler) retire(removed []*node, inNext map[ID]bool) {
	s.stop(removed)
	for _, n := range removed {
		n.removed = true
		n.gen++ // its timers are stale
		if !n.started {
			s.unstarted--
		}
		s.setRetryWait(n, false)
		s.setWatchRetryWait(n, false)
		s.setHeld(n, false)
		for _, id := range n.ids() {
			if !inNext[id] {
				s.state.forget([]ID{id})
				delete(s.retryUsed, id)
			}
		}
	}
}

// rewire rebuilds the edges of every node of the new graph from g's
// edges, and resets what depends on them (blocker counts, busy bits, the
// ready queue and the deferred ancestors), which recountBlockers rebuilds.
func rewire(g *Graph, next map[ID]*node) {
	for _, n := range next {
		n.parents, n.children, n.notify, n.sends = n.parents[:0], n.children[:0], n.notify[:0], n.sends[:0]
		n.blockers, n.busy, n.queued = 0, false, false
		clear(n.waiters) // the ready queue is rebuilt by recountBlockers
		n.waiters = n.waiters[:0]
	}
	for _, e := range g.Edges() {
		from, to := next[e.From], next[e.To]
		from.children = append(from.children, to)
		to.parents = append(to.parents, from)
		if e.Notify {
			from.notify = append(from.notify, to)
		}
		for _, k := range e.Keys {
			from.sends = append(from.sends, sendEdge{to: to, KeyMap: k})
		}
	}
}

// startAdded counts each added vertex as unstarted, gives it the
// refreshes pending for the IDs it stands for, and starts its Watch. A
// refresh pending on a removed vertex goes with its members to whichever
// added vertex now holds them (a vertex regrouped or ungrouped keeps it),
// and so does one persisted in the state file.
func (s *scheduler) startAdded(added, removed []*node, now time.Time) {
	oldByMember := map[ID]*node{}
	for _, n := range removed {
		for _, id := range n.ids() {
			oldByMember[id] = n
		}
	}
	for _, n := range added {
		s.unstarted++
		for _, id := range n.ids() {
			if old := oldByMember[id]; old != nil && old.refresh {
				n.refresh = true
			}
		}
		if s.state.takeRefresh(n.ids()) {
			n.refresh = true
		}
		s.startWatch(n, now)
	}
}

// deliverMissedRefreshes gives the notify children of each added vertex
// whose CheckApply was in flight when the agent died the refresh they
// missed: that CheckApply may have changed something.
func (s *scheduler) deliverMissedRefreshes(added []*node) {
	for _, n := range added {
		if s.state.takeInflight(n.ids()) {
			for _, c := range n.notify {
				c.refresh = true
				s.state.setRefresh(c.ids(), true)
			}
		}
	}
}

// resendLastValues offers each receiver what its senders last sent, if it
// lacks it: a new receiver of a kept sender, or an edge moved to another
// sender. A receiver that holds the value already gets nothing (see offer).
func resendLastValues(next map[ID]*node) {
	for _, n := range next {
		for _, e := range n.sends {
			if v, ok := n.lastSent[e.Send]; ok {
				offer(e, v)
			}
		}
	}
}

// recountBlockers recomputes every vertex's busy bit and count of busy
// parents in topological order, so each parent is settled before its
// children count it, and queues the vertices that may run.
func (s *scheduler) recountBlockers(g *Graph, next map[ID]*node) {
	for _, n := range topoOrder(g, next) {
		for _, p := range n.parents {
			if p.busy {
				n.blockers++
			}
		}
		n.busy = busy(n)
		if s.runnable(n) {
			n.queued = true
			s.ready = append(s.ready, n)
		}
	}
}

// startWatch initialises n's resource and starts its Watch goroutine, or
// its poll timer. An Init failure kills the vertex.
func (s *scheduler) startWatch(n *node, now time.Time) {
	rt := &Runtime{
		ID:       n.id,
		Hostname: s.cfg.Hostname,
		World:    s.cfg.World,
		Logger:   slog.New(dampedHandler{s.log.Handler(), &n.flap.quiet}).With("resource", n.id.String()),
		Running:  func() { s.inbox.signal(n, sigRunning) },
		Event:    func() { s.inbox.signal(n, sigEvent) },
		Refresh:  n.curRefresh.Load,
		Send: func(vals map[string]any) error {
			if err := sendValues(n.res, vals); err != nil {
				return err
			}
			n.sendMu.Lock()
			defer n.sendMu.Unlock()
			for k, v := range vals {
				n.sendBuf = setKey(n.sendBuf, k, v)
			}
			return nil
		},
		Recv: func() map[string]bool {
			if p := n.curRecv.Load(); p != nil {
				return *p
			}
			return nil
		},
		Fences: func() map[string]uint64 {
			if p := n.curFences.Load(); p != nil {
				return maps.Clone(*p)
			}
			return nil
		},
	}
	if n.meta.limited() {
		n.limiter = rate.NewLimiter(n.meta.Limit, n.meta.Burst)
	}
	done := make(chan struct{})
	close(done)
	n.watchDone, n.watchCancel = done, func() {}
	if err := safeInit(n.res, rt); err != nil {
		n.initFailed = true
		s.kill(n, "init failed", err)
		return
	}
	if n.meta.Poll > 0 {
		// Polling replaces Watch: the vertex is ready at once and checked
		// every Poll.
		s.markStarted(n)
		s.timers.add(timerEntry{at: now.Add(n.meta.Poll), n: n, kind: timerPoll, gen: n.gen})
		return
	}
	s.runWatch(n)
}

// runWatch starts one run of n's Watch.
func (s *scheduler) runWatch(n *node) {
	ctx, cancel := context.WithCancel(s.watchCtx)
	done := make(chan struct{})
	n.watchCancel, n.watchDone = cancel, done
	go func() {
		defer close(done)
		defer cancel()
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
		if n.initFailed || n.running {
			continue // a CheckApply left behind: cleaned up when it returns
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

// setKey sets m[k] = v, making m if needed.
func setKey(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m
}

// sameParams reports whether two resources are the same resource: the same
// value, or the same type with equal exported fields. Unexported fields hold
// run-time state and are ignored, and so are the parameters listed in
// received, which send/recv edges set.
func sameParams(a, b Res, received []string) bool {
	if a == b {
		return true
	}
	if ga, ok := a.(*group); ok {
		gb, ok := b.(*group)
		return ok && sameGroup(ga, gb)
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
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if len(received) > 0 {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" {
				key = strings.ToLower(f.Name)
			}
			if slices.Contains(received, key) {
				continue
			}
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
