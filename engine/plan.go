package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// A graph swap happens in two steps. When a new graph arrives the
// scheduler plans it: it works out which vertices of the running graph the
// new one keeps and which it replaces or removes (the doomed ones). Doomed
// vertices start no new CheckApply from then on; every other vertex goes on
// running, repairing drift, while the swap waits for the doomed vertices'
// running CheckApply calls to finish. Then the plan is applied (see swap).
//
// The wait is bounded: after Config.SwapTimeout the doomed CheckApply calls
// are cancelled, and after StopTimeout more the swap goes ahead without the
// ones that ignore it (their results are dropped when they come).

// errReplaced is the cause of a CheckApply cancelled because a graph swap
// replaces or removes its vertex and it ran too long.
var errReplaced = errors.New("cancelled: a new graph replaces or removes this resource")

// swapPlan is a graph waiting to be swapped in.
type swapPlan struct {
	g        *Graph
	received map[ID][]string // parameters set by send/recv edges, by receiver
	doomed   []*node         // running vertices the new graph replaces or removes
	// touched lists kept vertices whose state changed in a way that may make
	// the new graph replace them after all: they received values, or died.
	touched []*node
	// since is when the engine began waiting for this swap (or an earlier
	// one it superseded).
	since time.Time
	stage swapStage
}

// swapStage is how far a swap's wait for doomed CheckApply calls has gone.
type swapStage uint8

const (
	swapWaiting   swapStage = iota // waiting for them to finish
	swapCancelled                  // their contexts are cancelled
	swapAbandoned                  // going ahead without them
)

// receivedParams maps each receiver of g's send/recv edges to the
// parameters they set.
func receivedParams(g *Graph) map[ID][]string {
	received := map[ID][]string{}
	for _, e := range g.Edges() {
		for _, k := range e.Keys {
			received[e.To] = append(received[e.To], k.Recv)
		}
	}
	return received
}

// keeps reports whether the new graph's vertex v is the running vertex old:
// same metaparameters and parameters, and not a dead vertex that v asks to
// rewatch.
func keeps(old *node, v Vertex, received []string) bool {
	return old.meta.Equal(v.Meta) && sameParams(old.res, v.Res, received) && !(old.dead && v.Meta.Rewatch)
}

// planSwap makes g the graph to swap in next, replacing any plan still
// waiting, and marks the running vertices g replaces or removes.
func (s *scheduler) planSwap(g *Graph, now time.Time) {
	prev := s.plan
	p := &swapPlan{g: g, received: receivedParams(g), since: now}
	if prev != nil {
		if prev.stage == swapWaiting {
			p.since = prev.since // the wait's bound runs from the first graph
		}
		for _, n := range prev.doomed {
			s.setDoomed(n, false)
		}
	}
	s.plan = p
	for _, v := range g.Vertices() {
		if old, ok := s.nodes[v.ID]; ok && !keeps(old, v, p.received[v.ID]) {
			s.doom(old)
		}
	}
	for id, old := range s.nodes {
		if _, ok := g.Vertex(id); !ok {
			s.doom(old)
		}
	}
	if prev != nil {
		// Vertices the superseded plan doomed and this one keeps may run
		// again.
		for _, n := range prev.doomed {
			s.update(n)
		}
	}
	if s.doomedRunning > 0 {
		s.log.Info("graph swap waits for running resources it replaces or removes; the rest of the graph keeps running",
			"graph", g.Name, "waiting_for", s.doomedNames(), "cancel_after", s.cfg.SwapTimeout-now.Sub(p.since))
	}
	s.armSwapTimer(now)
}

// doom marks n as replaced or removed by the planned swap.
func (s *scheduler) doom(n *node) {
	if !n.doomed {
		s.setDoomed(n, true)
		s.plan.doomed = append(s.plan.doomed, n)
	}
}

// setDoomed sets n.doomed, keeping doomedRunning, the number of doomed
// vertices with a CheckApply the swap waits for, in step.
func (s *scheduler) setDoomed(n *node, on bool) {
	if n.doomed == on {
		return
	}
	n.doomed = on
	if n.running && !n.abandoned {
		if on {
			s.doomedRunning++
		} else {
			s.doomedRunning--
		}
	}
}

// touch notes that a kept vertex changed in a way that may make the
// planned swap replace it after all.
func (s *scheduler) touch(n *node) {
	if s.plan != nil && !n.doomed {
		s.plan.touched = append(s.plan.touched, n)
	}
}

// trySwap applies the planned swap if nothing it waits for is running.
// Kept vertices touched since planning are compared again first; any that
// the new graph now replaces is doomed and may make the swap wait again.
func (s *scheduler) trySwap() {
	p := s.plan
	if s.doomedRunning == 0 {
		for _, n := range p.touched {
			if n.doomed || n.removed {
				continue
			}
			if v, ok := p.g.Vertex(n.id); ok && !keeps(n, v, p.received[n.id]) {
				s.doom(n)
			}
		}
		p.touched = p.touched[:0]
	}
	if s.doomedRunning > 0 {
		return
	}
	s.plan = nil
	s.disarmSwapTimer()
	s.swap(p)
}

// swapTimeout handles the swap timer: the wait for doomed CheckApply calls
// has lasted SwapTimeout (cancel them) or StopTimeout more (go without them).
func (s *scheduler) swapTimeout(now time.Time) {
	p := s.plan
	if p == nil || s.doomedRunning == 0 {
		return
	}
	switch p.stage {
	case swapWaiting:
		p.stage = swapCancelled
		s.log.Warn("graph swap: cancelling the running resources it replaces or removes",
			"waiting_for", s.doomedNames(), "waited", now.Sub(p.since).Round(time.Millisecond))
		for _, n := range p.doomed {
			if n.running && n.applyCancel != nil {
				n.applyCancel(errReplaced)
			}
		}
	case swapCancelled:
		p.stage = swapAbandoned
		s.log.Error("graph swap: resources ignored cancellation; swapping without them",
			"left_behind", s.doomedNames(), "waited", now.Sub(p.since).Round(time.Millisecond))
		for _, n := range p.doomed {
			if n.running && !n.abandoned {
				n.abandoned = true
				s.doomedRunning--
			}
		}
	}
	s.armSwapTimer(now)
}

// armSwapTimer sets the swap timer for the next stage of the current
// plan's wait, if it waits for anything.
func (s *scheduler) armSwapTimer(now time.Time) {
	s.disarmSwapTimer()
	p := s.plan
	if p == nil || s.doomedRunning == 0 || p.stage == swapAbandoned {
		return
	}
	due := p.since.Add(s.cfg.SwapTimeout)
	if p.stage == swapCancelled {
		due = due.Add(s.cfg.StopTimeout)
	}
	s.swapTimer = time.NewTimer(max(due.Sub(now), 0))
}

func (s *scheduler) disarmSwapTimer() {
	if s.swapTimer != nil {
		s.swapTimer.Stop()
		s.swapTimer = nil
	}
}

// swapTimerC returns the swap timer's channel, or nil.
func (s *scheduler) swapTimerC() <-chan time.Time {
	if s.swapTimer == nil {
		return nil
	}
	return s.swapTimer.C
}

// doomedNames lists the doomed vertices the swap waits for, for logs.
func (s *scheduler) doomedNames() string {
	var ids []ID
	if s.plan != nil {
		for _, n := range s.plan.doomed {
			if n.running && !n.abandoned {
				ids = append(ids, n.id)
			}
		}
	}
	return idList(ids)
}

// runningNames lists the vertices with a CheckApply in flight, for logs.
func (s *scheduler) runningNames() string {
	var ids []ID
	for _, n := range s.nodes {
		if n.running {
			ids = append(ids, n.id)
		}
	}
	return idList(ids)
}

// maxListed bounds how many vertices a log line names.
const maxListed = 10

// idList formats ids, sorted, for a log line: at most maxListed of them,
// then how many more.
func idList(ids []ID) string {
	sortIDs(ids)
	var b strings.Builder
	for i, id := range ids {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(ids)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(id.String())
	}
	return b.String()
}
