package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// scheduler is the single goroutine that owns every vertex's state. All of
// its fields are touched only by that goroutine, apart from the inbox and the
// results channel, which other goroutines send on.
type scheduler struct {
	cfg Config
	log *slog.Logger

	abort       <-chan struct{}
	applyCtx    context.Context // parent of every CheckApply context
	applyCancel context.CancelFunc
	watchCtx    context.Context // parent of every Watch context

	inbox   *inbox
	results chan result

	nodes     map[ID]*node
	ready     []*node // candidates to dispatch; re-checked on pop
	running   int     // CheckApply calls in flight
	unstarted int     // vertices whose Watch has not reported running yet
	epoch     uint64  // for marks in descendant searches

	pending  *Graph // newest graph not yet swapped in
	hasGraph bool
	stopping bool
	aborted  bool
	gone     chan struct{} // closed when loop returns

	conv converger

	signalBuf []*node
	work      []*node
}

// result is what a CheckApply goroutine reports back.
type result struct {
	n       *node
	ok      bool
	err     error
	refresh bool
}

func newScheduler(ctx context.Context, e *Engine) *scheduler {
	base := context.WithoutCancel(ctx)
	applyCtx, applyCancel := context.WithCancel(base)
	return &scheduler{
		cfg:         e.cfg,
		log:         e.log,
		abort:       e.abort,
		applyCtx:    applyCtx,
		applyCancel: applyCancel,
		watchCtx:    base,
		inbox:       newInbox(),
		results:     make(chan result),
		gone:        make(chan struct{}),
		nodes:       map[ID]*node{},
		conv:        newConverger(e.cfg.ConvergedTimeout, e.cfg.OnConverged),
	}
}

// loop is the scheduler goroutine's body.
func (s *scheduler) loop(ctx context.Context, graphs <-chan *Graph) error {
	defer close(s.gone)
	defer s.applyCancel()
	done := ctx.Done()
	abort := s.abort
	var giveUp <-chan time.Time // after Abort: stop waiting for CheckApply
	for {
		if s.pending != nil && s.running == 0 && !s.stopping {
			g := s.pending
			s.pending = nil
			s.swap(g)
		}
		if s.stopping && s.running == 0 {
			break
		}
		s.dispatch()
		s.conv.check(time.Now(), s.idle(), s.failedIDs)

		select {
		case <-done:
			s.log.Info("stopping: waiting for running resources", "running", s.running)
			s.stopping, done, graphs = true, nil, nil
		case <-abort:
			s.log.Warn("aborting: cancelling running resources", "running", s.running)
			s.stopping, s.aborted, done, abort, graphs = true, true, nil, nil, nil
			s.applyCancel()
			giveUp = time.After(s.cfg.StopTimeout)
		case <-giveUp:
			s.log.Error("resources ignored cancellation; stopping without them",
				"running", s.running, "waited", s.cfg.StopTimeout)
			s.stopAll()
			return ErrAborted
		case g, ok := <-graphs:
			if !ok {
				graphs = nil
				continue
			}
			if g == nil {
				s.log.Error("nil graph ignored")
				continue
			}
			if err := g.Validate(); err != nil {
				s.log.Error("graph rejected; keeping the running one", "graph", g.Name, "err", err)
				continue
			}
			s.pending = g
		case <-s.inbox.wake:
			s.handleSignals()
		case r := <-s.results:
			s.finish(r)
		case <-s.conv.timer():
		}
	}
	s.stopAll()
	if s.aborted {
		return ErrAborted
	}
	return nil
}

// idle reports whether nothing can happen without a new event: no vertex is
// running, ready, waiting for its Watch, or waiting for a swap.
func (s *scheduler) idle() bool {
	// Deferred vertices wait on a running one, so running == 0 covers them.
	return s.hasGraph && s.pending == nil && s.running == 0 && s.unstarted == 0 && len(s.ready) == 0
}

// handleSignals applies the signals Watch goroutines have sent.
func (s *scheduler) handleSignals() {
	s.signalBuf = s.inbox.drain(s.signalBuf[:0])
	for i, n := range s.signalBuf {
		s.signalBuf[i] = nil
		f := n.sig.Swap(0)
		if n.removed || n.dead || f == 0 {
			continue
		}
		if f&sigEvent != 0 {
			n.dirty = true // a new vertex is dirty already; this only matters once started
		}
		if f&sigRunning != 0 {
			if n.started {
				n.dirty = true // a second Running counts as an event
			} else {
				s.markStarted(n)
			}
		}
		if f&sigWatchExit != 0 {
			s.watchExited(n)
		}
		s.update(n)
	}
}

func (s *scheduler) markStarted(n *node) {
	if !n.started {
		n.started = true
		s.unstarted--
	}
}

// watchExited handles a Watch that returned while its vertex is in the graph.
func (s *scheduler) watchExited(n *node) {
	err := n.watchErr
	if err == nil {
		// Nothing more to watch. A Watch that never said it was running
		// has nothing to wait for either.
		s.markStarted(n)
		return
	}
	s.kill(n, "watch failed", err)
}

// kill marks n dead after its Init or Watch failed: it never runs again
// until a swap replaces it.
func (s *scheduler) kill(n *node, what string, err error) {
	s.log.Error(what+"; the resource stays failed until its parameters change (or it has meta rewatch and the graph is reloaded)",
		"resource", n.id.String(), "err", err)
	s.markStarted(n)
	n.dead = true
	s.conv.changed(time.Now())
}

// runnable reports whether n may start a CheckApply now, as far as its own
// state and its ancestors are concerned.
func (s *scheduler) runnable(n *node) bool {
	return n.started && n.dirty && !n.running && n.blockers == 0 && !n.dead && !n.removed
}

// update recomputes n's busy bit and, if it changed, its descendants'
// blocker counts, queueing any vertex that became runnable. It touches only
// the vertices whose state actually changes.
func (s *scheduler) update(n *node) {
	work := append(s.work[:0], n)
	for len(work) > 0 {
		m := work[len(work)-1]
		work = work[:len(work)-1]
		busy := m.dirty || m.running || m.failed() || m.blockers > 0
		if busy != m.busy {
			m.busy = busy
			for _, c := range m.children {
				if busy {
					c.blockers++
				} else {
					c.blockers--
				}
				work = append(work, c)
			}
		}
		if !m.queued && s.runnable(m) {
			m.queued = true
			s.ready = append(s.ready, m)
		}
	}
	s.work = work[:0]
}

// dispatch starts a CheckApply for every ready vertex, unless the engine is
// stopping or waiting to swap. A ready vertex with a running descendant
// waits for that descendant to finish, so an ancestor and a descendant never
// run at the same time.
func (s *scheduler) dispatch() {
	if s.stopping || s.pending != nil {
		return
	}
	for len(s.ready) > 0 {
		n := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		n.queued = false
		if !s.runnable(n) {
			continue
		}
		if s.running > 0 {
			if d := s.runningDescendant(n); d != nil {
				n.queued = true
				d.waiters = append(d.waiters, n)
				continue
			}
		}
		s.start(n)
	}
	s.ready = s.ready[:0]
}

// runningDescendant returns a running descendant of n, or nil.
func (s *scheduler) runningDescendant(n *node) *node {
	s.epoch++
	stack := append(s.work[:0], n.children...)
	defer func() { s.work = stack[:0] }()
	for len(stack) > 0 {
		m := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if m.mark == s.epoch {
			continue
		}
		m.mark = s.epoch
		if m.running {
			return m
		}
		stack = append(stack, m.children...)
	}
	return nil
}

// start launches n's CheckApply on a goroutine of its own.
func (s *scheduler) start(n *node) {
	n.running, n.dirty = true, false
	refresh := n.refresh
	n.refresh = false
	n.curRefresh.Store(refresh)
	s.running++
	s.update(n)
	apply := !s.cfg.Noop && !n.meta.Noop
	ctx := s.applyCtx
	go func() {
		ok, err := safeCheckApply(ctx, n.res, apply)
		select {
		case s.results <- result{n: n, ok: ok, err: err, refresh: refresh}:
		case <-s.gone: // the engine gave up waiting after Abort
		}
	}()
}

// finish records the outcome of a CheckApply.
func (s *scheduler) finish(r result) {
	n := r.n
	n.running = false
	n.curRefresh.Store(false)
	s.running--
	now := time.Now()
	n.checkFailed = r.err != nil
	switch {
	case r.err != nil:
		n.refresh = n.refresh || r.refresh // not consumed: deliver it next time
		s.conv.changed(now)
		lvl := slog.LevelError
		if errors.Is(r.err, context.Canceled) && s.aborted {
			lvl = slog.LevelWarn
		}
		s.log.Log(context.Background(), lvl, "resource failed", "resource", n.id.String(), "err", r.err)
	case !r.ok:
		s.conv.changed(now)
		if s.cfg.Noop || n.meta.Noop {
			// Nothing changed, so nothing is refreshed.
			s.log.Info("resource would change (noop)", "resource", n.id.String())
			break
		}
		s.log.Info("resource applied", "resource", n.id.String(), "refresh", r.refresh)
		for _, c := range n.notify {
			c.refresh, c.dirty = true, true
			s.update(c)
		}
	default:
		s.log.Debug("resource in state", "resource", n.id.String())
	}
	s.update(n)
	// Ancestors that waited for this vertex may go now.
	for i, w := range n.waiters {
		n.waiters[i] = nil
		w.queued = false
		if s.runnable(w) {
			w.queued = true
			s.ready = append(s.ready, w)
		}
	}
	n.waiters = n.waiters[:0]
}

// failedIDs lists the failed vertices, sorted.
func (s *scheduler) failedIDs() []ID {
	var ids []ID
	for _, n := range s.nodes {
		if n.failed() {
			ids = append(ids, n.id)
		}
	}
	sortIDs(ids)
	return ids
}
