package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// scheduler is the single goroutine that owns every vertex's state. All of
// its fields are touched only by that goroutine, apart from the inbox and the
// results channel, which other goroutines send on.
type scheduler struct {
	cfg Config
	log *slog.Logger

	// Lifetimes: the contexts the goroutines the scheduler starts run
	// under, and how stopping and aborting end them (see beginStop,
	// beginAbort, shutdown).
	abort       <-chan struct{}
	applyCtx    context.Context // parent of every CheckApply context
	applyCancel context.CancelFunc
	semaCtx     context.Context // semaphore waits; cancelled when stopping
	semaCancel  context.CancelFunc
	watchCtx    context.Context // parent of every Watch context
	// slotRetry ends the retries of cluster slot releases that failed
	// (see releaseSlots); slotWG counts the goroutines releasing slots.
	slotRetry       context.Context
	slotRetryCancel context.CancelFunc
	slotWG          sync.WaitGroup

	// What wakes the scheduler, apart from new graphs: Watch signals,
	// CheckApply results, timers; and the state file it keeps.
	inbox   *inbox
	results chan result
	timers  timerQueue
	state   *stateStore // persisted refreshes; nil without Config.StateDir

	// The running graph and its counts.
	nodes     map[ID]*node
	ready     []*node // candidates to dispatch; re-checked on pop
	running   int     // CheckApply calls in flight
	unstarted int     // vertices whose Watch has not reported running yet
	waiting   int     // vertices waiting on a retry, restart or rate limit
	epoch     uint64  // for marks in descendant searches

	// Retries and semaphores, which outlive the vertices that use them.
	retryUsed map[ID]int           // CheckApply retries used, by kind and name
	sems      map[string]*semEntry // local semaphores by id
	global    *semaphore.Weighted  // Config.Sema, nil if off

	// Graph swaps (see plan.go and swap.go) and the scheduler's own life.
	plan          *swapPlan   // newest graph not yet swapped in; see plan.go
	doomedRunning int         // running CheckApply calls the plan waits for
	swapTimer     *time.Timer // the plan's next step, if it waits
	hasGraph      bool
	stopping      bool
	aborted       bool
	gone          chan struct{} // closed when loop returns

	conv converger // convergence: when the graph is idle long enough

	// The status Engine.Snapshot reads, and the vertices whose status
	// changed since it was last published (see status.go).
	board *board
	pub   []*node

	// Buffers reused from round to round, to spare allocations.
	signalBuf []*node
	timerBuf  []timerEntry
	work      []*node
}

// result is what a CheckApply goroutine reports back.
type result struct {
	n       *node
	ok      bool
	err     error
	refresh bool
	apply   bool                  // false in noop: nothing was consumed
	notRun  bool                  // stopped while waiting for a semaphore
	held    []*semaphore.Weighted // semaphores to release
	recv    map[string]any        // received values set before this CheckApply
	ran     bool                  // CheckApply was called
	start   time.Time             // when it was called
	dur     time.Duration         // how long it took
}

func newScheduler(ctx context.Context, e *Engine) *scheduler {
	base := context.WithoutCancel(ctx)
	applyCtx, applyCancel := context.WithCancel(base)
	semaCtx, semaCancel := context.WithCancel(base)
	s := &scheduler{
		cfg:         e.cfg,
		log:         e.log,
		abort:       e.abort,
		applyCtx:    applyCtx,
		applyCancel: applyCancel,
		semaCtx:     semaCtx,
		semaCancel:  semaCancel,
		watchCtx:    base,
		inbox:       newInbox(),
		results:     make(chan result),
		gone:        make(chan struct{}),
		nodes:       map[ID]*node{},
		retryUsed:   map[ID]int{},
		sems:        map[string]*semEntry{},
		conv:        newConverger(e.cfg.ConvergedTimeout, boardNotify(e.board, e.cfg.OnConverged)),
		board:       e.board,
		global:      globalSema(e.cfg.Sema),
	}
	s.slotRetry, s.slotRetryCancel = context.WithCancel(base)
	return s
}

// loop is the scheduler goroutine's body: each round it applies a planned
// swap that no longer waits, dispatches the ready vertices, flushes the
// state file and checks convergence, then waits for the next thing to
// happen. It stops once stopping and nothing runs.
func (s *scheduler) loop(ctx context.Context, graphs <-chan *Graph) error {
	defer close(s.gone)
	defer s.slotRetryCancel()
	defer s.applyCancel()
	defer s.semaCancel()
	defer s.timers.stop()
	defer s.disarmSwapTimer()
	done := ctx.Done()
	abort := s.abort
	var giveUp <-chan time.Time // after Abort: stop waiting for CheckApply
	for {
		if s.plan != nil && !s.stopping {
			s.trySwap(time.Now())
		}
		if s.stopping && s.running == 0 {
			break
		}
		s.pollSignals()
		s.dispatch()
		now := time.Now()
		s.state.flush()
		s.publishStatus() // before check: OnConverged may read the snapshot
		s.conv.check(now, s.idle(), s.report)

		select {
		case <-done:
			s.beginStop()
			done, graphs = nil, nil
		case <-abort:
			s.beginAbort()
			done, abort, graphs = nil, nil, nil
			giveUp = time.After(s.cfg.StopTimeout)
		case <-giveUp:
			s.log.Error("resources ignored cancellation; stopping without them",
				"running", s.runningNames(), "waited", s.cfg.StopTimeout)
			s.stopAll()
			return ErrAborted
		case g, ok := <-graphs:
			if !ok {
				graphs = nil
				continue
			}
			s.takeGraph(g)
		case <-s.swapTimerC():
			s.swapTimer = nil
			s.swapTimeout(time.Now())
		case <-s.inbox.wake:
			s.handleSignals()
		case r := <-s.results:
			s.finish(r)
		case <-s.timers.channel(now):
			s.timers.fired()
			s.handleTimers()
		case <-s.conv.timer():
		case <-s.state.due():
			s.state.flushNow()
		}
	}
	return s.shutdown()
}

// beginStop starts a graceful stop (Run's context ended): no new
// CheckApply or swap, waits for semaphores end, running CheckApply calls
// finish.
func (s *scheduler) beginStop() {
	if s.running > 0 {
		s.log.Info("stopping: waiting for running resources", "running", s.runningNames())
	}
	s.disarmSwapTimer()
	s.stopping = true
	s.semaCancel()
}

// beginAbort starts an abort: as beginStop, and the running CheckApply
// calls and the retries of cluster slot releases are cancelled too.
func (s *scheduler) beginAbort() {
	s.log.Warn("aborting: cancelling running resources", "running", s.runningNames())
	s.disarmSwapTimer()
	s.stopping, s.aborted = true, true
	s.semaCancel()
	s.applyCancel()
	s.slotRetryCancel()
}

// takeGraph plans a swap to g, or rejects g (logging why) and keeps the
// running graph.
func (s *scheduler) takeGraph(g *Graph) {
	if g == nil {
		s.log.Error("nil graph ignored")
		return
	}
	if err := errors.Join(g.Validate(), s.checkClusterSemas(g)); err != nil {
		s.log.Error("graph rejected; keeping the running one", "graph", g.Name, "err", err)
		return
	}
	s.planSwap(g, time.Now())
}

// shutdown stops every vertex once nothing runs, writes the state file,
// and gives the cluster slots still being released one last attempt.
func (s *scheduler) shutdown() error {
	s.stopAll()
	s.state.flushNow()
	s.slotRetryCancel()
	s.slotWG.Wait()
	if s.aborted {
		return ErrAborted
	}
	return nil
}

// idle reports whether nothing can happen without a new event: no vertex is
// running, ready, waiting for its Watch, a timer or a swap.
func (s *scheduler) idle() bool {
	// Deferred vertices wait on a running one, so running == 0 covers them.
	return s.hasGraph && s.plan == nil && s.running == 0 && s.unstarted == 0 &&
		s.waiting == 0 && len(s.ready) == 0
}

// pollSignals applies the signals already sent, if any. The loop calls it
// before each dispatch because its select takes whichever case is ready:
// a CheckApply result may be taken while a Watch failure waits, and the
// failure must still hold back the descendants the result would release.
func (s *scheduler) pollSignals() {
	select {
	case <-s.inbox.wake:
		s.handleSignals()
	default:
	}
}

// handleSignals applies the signals Watch goroutines have sent.
func (s *scheduler) handleSignals() {
	now := time.Now()
	s.signalBuf = s.inbox.drain(s.signalBuf[:0])
	for i, n := range s.signalBuf {
		s.signalBuf[i] = nil
		f := n.sig.Swap(0)
		if n.removed || n.dead || f == 0 {
			continue
		}
		if f&sigEvent != 0 {
			s.event(n, now)
		}
		if f&sigRunning != 0 {
			if n.started {
				s.event(n, now) // a second Running counts as an event
			} else {
				s.markStarted(n)
			}
		}
		if f&sigWatchExit != 0 {
			s.watchExited(n, now)
		}
		s.update(n)
	}
}

// event marks n dirty, unless the rate limit holds the event back for now.
func (s *scheduler) event(n *node, now time.Time) {
	if n.limiter == nil || !n.started {
		n.dirty = true // before startup the vertex is dirty already
		return
	}
	if n.held {
		return // coalesced into the event already waiting
	}
	r := n.limiter.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		s.setHeld(n, true)
		s.timers.add(timerEntry{at: now.Add(d), n: n, kind: timerLimit, gen: n.gen})
		return
	}
	n.dirty = true
}

func (s *scheduler) markStarted(n *node) {
	if !n.started {
		n.started = true
		s.unstarted--
	}
}

// watchExited handles a Watch that returned while its vertex is in the graph.
func (s *scheduler) watchExited(n *node, now time.Time) {
	err := n.watchErr
	if err == nil {
		// Nothing more to watch. A Watch that never said it was running
		// has nothing to wait for either.
		s.markStarted(n)
		return
	}
	if n.meta.Retry < 0 || n.watchRetries < n.meta.Retry {
		n.watchRetries++
		s.log.Warn("watch failed; restarting it", "resource", n.id.String(), "err", err,
			"retry", n.watchRetries, "of", retryBudget(n.meta.Retry), "delay", n.meta.Delay)
		s.setWatchRetryWait(n, true)
		s.timers.add(timerEntry{at: now.Add(n.meta.Delay), n: n, kind: timerWatchRetry, gen: n.gen})
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
	n.lastErr = fmt.Errorf("%s: %w", what, err)
	s.touch(n) // a planned swap may rewatch it
	s.conv.changed(time.Now())
}

// handleTimers runs the timers that are due.
func (s *scheduler) handleTimers() {
	now := time.Now()
	s.timerBuf = s.timers.due(now, s.timerBuf[:0])
	for i, e := range s.timerBuf {
		s.timerBuf[i] = timerEntry{}
		n := e.n
		if n.removed || e.gen != n.gen {
			continue
		}
		switch e.kind {
		case timerRetry:
			if !n.retryWait {
				continue
			}
			s.setRetryWait(n, false)
			n.dirty = true
		case timerWatchRetry:
			if !n.watchRetryWait {
				continue
			}
			s.setWatchRetryWait(n, false)
			s.runWatch(n)
		case timerLimit:
			if !n.held {
				continue
			}
			s.setHeld(n, false)
			n.dirty = true
		case timerPoll:
			n.dirty = true
			s.timers.add(timerEntry{at: now.Add(n.meta.Poll), n: n, kind: timerPoll, gen: n.gen})
		}
		s.update(n)
	}
}

// runnable reports whether n may start a CheckApply now, as far as its own
// state and its ancestors are concerned.
func (s *scheduler) runnable(n *node) bool {
	return n.started && n.dirty && !n.running && n.blockers == 0 && !n.dead &&
		!n.removed && !n.doomed && n.predecessor == nil && !n.retryWait && !n.watchRetryWait
}

// busy reports whether n has pending work: it is dirty, running, failed or
// waiting, or one of its ancestors is.
func busy(n *node) bool {
	return n.dirty || n.running || n.failed() || n.waiting() || n.blockers > 0
}

// update recomputes n's busy bit and, if it changed, its descendants'
// blocker counts, queueing any vertex that became runnable. It touches only
// the vertices whose state actually changes.
func (s *scheduler) update(n *node) {
	work := append(s.work[:0], n)
	for len(work) > 0 {
		m := work[len(work)-1]
		work = work[:len(work)-1]
		if b := busy(m); b != m.busy {
			m.busy = b
			for _, c := range m.children {
				if b {
					c.blockers++
				} else {
					c.blockers--
				}
				work = append(work, c)
			}
		}
		s.markPublish(m)
		if !m.queued && s.runnable(m) {
			m.queued = true
			s.ready = append(s.ready, m)
		}
	}
	s.work = work[:0]
}

func (s *scheduler) setRetryWait(n *node, on bool) {
	if n.retryWait != on {
		n.retryWait = on
		s.countWait(on)
	}
}

func (s *scheduler) setWatchRetryWait(n *node, on bool) {
	if n.watchRetryWait != on {
		n.watchRetryWait = on
		s.countWait(on)
	}
}

func (s *scheduler) setHeld(n *node, on bool) {
	if n.held != on {
		n.held = on
		s.countWait(on)
	}
}

func (s *scheduler) countWait(on bool) {
	if on {
		s.waiting++
	} else {
		s.waiting--
	}
}

// report lists, sorted, the failed vertices and those that would change,
// for a converged Status.
func (s *scheduler) report() Status {
	var st Status
	for _, n := range s.nodes {
		if n.failed() {
			st.Failed = append(st.Failed, n.id)
		}
		if n.wouldChange {
			st.WouldChange = append(st.WouldChange, n.id)
		}
	}
	sortIDs(st.Failed)
	sortIDs(st.WouldChange)
	return st
}

// retryBudget formats a Meta.Retry for logs.
func retryBudget(retry int) any {
	if retry < 0 {
		return "unlimited"
	}
	return retry
}
