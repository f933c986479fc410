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
// vertices start no new CheckApply from then on (one still waiting for its
// semaphores gives up); every other vertex goes on running, repairing
// drift, while the swap waits for the doomed vertices' running CheckApply
// calls to finish. Then the plan is applied (see swap).
//
// The wait is bounded per vertex: SwapTimeout after a vertex was doomed its
// CheckApply is cancelled, and StopTimeout after that the swap goes ahead
// without it (it is abandoned). The vertex's replacement, if any, does not
// run until the abandoned call has returned, so one resource never has two
// CheckApply calls at once.

// errReplaced is the cause of a CheckApply cancelled because a graph swap
// replaces or removes its vertex and it ran too long.
var errReplaced = errors.New("cancelled: a new graph replaces or removes this resource")

// swapPlan is a graph waiting to be swapped in.
type swapPlan struct {
	g        *Graph
	received map[ID][]string // parameters set by send/recv edges, by receiver
	doomed   []*node         // vertices the new graph replaces or removes
	// touched lists kept vertices whose state changed in a way that may make
	// the new graph replace them after all: they received values, or died.
	touched []*node
}

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
// waiting, and marks the running vertices g replaces or removes. A vertex
// the superseded plan doomed too keeps its clock.
func (s *scheduler) planSwap(g *Graph, now time.Time) {
	prev := s.plan
	p := &swapPlan{g: g, received: receivedParams(g)}
	s.plan = p
	s.epoch++ // marks the vertices p dooms
	for _, v := range g.Vertices() {
		if old, ok := s.nodes[v.ID]; ok && !keeps(old, v, p.received[v.ID]) {
			s.doom(old, now)
		}
	}
	for id, old := range s.nodes {
		if _, ok := g.Vertex(id); !ok {
			s.doom(old, now)
		}
	}
	if prev != nil {
		// Vertices the superseded plan doomed and this one keeps may run
		// again.
		for _, n := range prev.doomed {
			if n.mark != s.epoch {
				s.setDoomed(n, false, now)
				n.touched = false
				s.update(n)
			}
		}
		for _, n := range prev.touched {
			n.touched = false
		}
	}
	if s.doomedRunning > 0 {
		s.log.Info("graph swap waits for running resources it replaces or removes; the rest of the graph keeps running",
			"graph", g.Name, "waiting_for", s.doomedNames(), "cancel_after", s.cfg.SwapTimeout)
	}
	s.armSwapTimer(now)
}

// doom marks n as replaced or removed by the planned swap. A CheckApply of
// n still waiting for its semaphores gives up.
func (s *scheduler) doom(n *node, now time.Time) {
	n.mark = s.epoch
	s.plan.doomed = append(s.plan.doomed, n)
	s.setDoomed(n, true, now)
	if n.semaCancel != nil {
		n.semaCancel()
	}
}

// setDoomed sets n.doomed, keeping doomedRunning, the number of doomed
// vertices with a CheckApply the swap waits for, in step, and starting or
// clearing n's clock.
func (s *scheduler) setDoomed(n *node, on bool, now time.Time) {
	if n.doomed == on {
		return
	}
	n.doomed = on
	if on {
		n.doomedAt, n.cancelledAt = now, time.Time{}
	}
	if n.running && !n.abandoned {
		if on {
			s.doomedRunning++
		} else {
			s.doomedRunning--
		}
	}
	if !on {
		n.abandoned = false // kept after all: an ordinary running vertex
	}
}

// touch notes that a kept vertex changed in a way that may make the
// planned swap replace it after all.
func (s *scheduler) touch(n *node) {
	if s.plan != nil && !n.doomed && !n.touched {
		n.touched = true
		s.plan.touched = append(s.plan.touched, n)
	}
}

// trySwap applies the planned swap if nothing it waits for is running.
// Kept vertices touched since planning are compared again first; any that
// the new graph now replaces is doomed and may make the swap wait again.
func (s *scheduler) trySwap(now time.Time) {
	p := s.plan
	if s.doomedRunning == 0 && len(p.touched) > 0 {
		before := s.doomedRunning
		for _, n := range p.touched {
			n.touched = false
			if n.doomed || n.removed {
				continue
			}
			if v, ok := p.g.Vertex(n.id); ok && !keeps(n, v, p.received[n.id]) {
				s.doom(n, now)
			}
		}
		p.touched = p.touched[:0]
		if s.doomedRunning > before {
			s.log.Info("graph swap now also waits for resources that changed while it waited",
				"waiting_for", s.doomedNames(), "cancel_after", s.cfg.SwapTimeout)
			s.armSwapTimer(now)
		}
	}
	if s.doomedRunning > 0 {
		return
	}
	s.plan = nil
	s.disarmSwapTimer()
	s.swap(p)
}

// swapTimeout handles the swap timer: a doomed vertex's CheckApply has run
// SwapTimeout past its doom (cancel it) or StopTimeout past its
// cancellation (go without it).
func (s *scheduler) swapTimeout(now time.Time) {
	if s.plan == nil {
		return
	}
	var cancelled, abandoned []ID
	for _, n := range s.plan.doomed {
		if !n.running || n.abandoned {
			continue
		}
		switch {
		case n.cancelledAt.IsZero() && !now.Before(n.doomedAt.Add(s.cfg.SwapTimeout)):
			n.cancelledAt = now
			cancelled = append(cancelled, n.id)
			if n.applyCancel != nil {
				n.applyCancel(errReplaced)
			}
		case !n.cancelledAt.IsZero() && !now.Before(n.cancelledAt.Add(s.cfg.StopTimeout)):
			n.abandoned = true
			s.doomedRunning--
			abandoned = append(abandoned, n.id)
		}
	}
	if len(cancelled) > 0 {
		s.log.Warn("graph swap: cancelling running resources it replaces or removes",
			"waiting_for", idList(cancelled), "waited", s.cfg.SwapTimeout)
	}
	if len(abandoned) > 0 {
		s.log.Error("graph swap: resources ignored cancellation; swapping without them (their replacements wait for them)",
			"left_behind", idList(abandoned), "waited", s.cfg.SwapTimeout+s.cfg.StopTimeout)
	}
	s.armSwapTimer(now)
}

// armSwapTimer sets the swap timer for the next step of the wait of any
// doomed vertex still running.
func (s *scheduler) armSwapTimer(now time.Time) {
	s.disarmSwapTimer()
	if s.plan == nil || s.doomedRunning == 0 {
		return
	}
	var due time.Time
	for _, n := range s.plan.doomed {
		if !n.running || n.abandoned {
			continue
		}
		at := n.doomedAt.Add(s.cfg.SwapTimeout)
		if !n.cancelledAt.IsZero() {
			at = n.cancelledAt.Add(s.cfg.StopTimeout)
		}
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	if !due.IsZero() {
		s.swapTimer = time.NewTimer(max(due.Sub(now), 0))
	}
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
