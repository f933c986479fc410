package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"golang.org/x/sync/semaphore"
)

// dispatch starts a CheckApply for every ready vertex, unless the engine is
// stopping; vertices a planned swap replaces or removes are never ready. A
// ready vertex with a running descendant
// waits for that descendant to finish, so an ancestor and a descendant never
// run at the same time. The state file is written once for the whole round,
// before any of its CheckApply calls begins.
func (s *scheduler) dispatch() {
	if s.stopping {
		return
	}
	var launches []func()
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
		if launch := s.start(n); launch != nil {
			launches = append(launches, launch)
		}
	}
	s.ready = s.ready[:0]
	s.state.flush()
	s.publishStatus() // so that each CheckApply's goroutine finds its vertex launched
	for _, launch := range launches {
		launch()
	}
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

// start marks n running and returns the function that launches its
// CheckApply on a goroutine of its own, or nil if the CheckApply failed
// before it could start (a received value the resource rejects). The
// goroutine (see run) takes n's semaphores first.
func (s *scheduler) start(n *node) func() {
	n.running, n.dirty = true, false
	refresh := n.refresh
	n.refresh = false
	n.curRefresh.Store(refresh)
	s.running++
	s.update(n)
	if len(n.notify) > 0 {
		// If the agent dies during this CheckApply, the children get their
		// refresh on restart: the change may have happened.
		s.state.setInflight(n.ids(), true)
		n.inflight = true
	}
	apply := !s.cfg.Noop && !n.meta.Noop
	r := result{n: n, refresh: refresh, apply: apply, recv: n.recvPending}
	n.recvPending = nil
	// Received values are set here, on the scheduler goroutine, so that a
	// Watch started later (a restart) happens after them.
	if len(r.recv) > 0 {
		s.touch(n) // its parameters changed: a planned swap may now replace it
		if r.err = receive(n, r.recv); r.err != nil {
			s.finish(r)
			return nil
		}
	}
	sems, cluster := s.semaphores(n, apply)
	ctx, cancel := context.WithCancelCause(s.applyCtx)
	n.applyCancel = cancel
	semaCtx, semaCancel := s.semaWait(n, len(sems)+len(cluster))
	l := launch{n: n, r: r, ctx: ctx, cancel: cancel, sems: sems, cluster: cluster,
		semaCtx: semaCtx, semaCancel: semaCancel, timeout: n.meta.Timeout}
	return func() { go s.run(l) }
}

// launch is what the goroutine of one CheckApply needs.
type launch struct {
	n      *node
	r      result
	ctx    context.Context // the CheckApply's; cancel ends it
	cancel context.CancelCauseFunc
	// sems and cluster are the semaphores to take first, in this order:
	// the host's own, then the cluster's.
	sems       []*semaphore.Weighted
	cluster    []clusterSema
	semaCtx    context.Context // ends the wait for them
	semaCancel context.CancelFunc
	timeout    time.Duration // Meta.Timeout
}

// run is the goroutine of one CheckApply: it takes the vertex's semaphores
// (local ones first, then the cluster's), runs CheckApply unless the wait
// was cut short, reports the result, and then gives back the cluster
// slots it took (the scheduler releases the local semaphores when it
// handles the result).
func (s *scheduler) run(l launch) {
	n, r := l.n, l.r
	slots := s.takeSemaphores(l, &r)
	if errors.Is(context.Cause(l.ctx), errReplaced) {
		r.notRun = true // doomed and cancelled while it waited
	}
	if !r.notRun && r.err == nil {
		r.ran, r.start = true, time.Now()
		s.board.applying(n, r.start)
		r.ok, r.err = s.checkApply(l, slots)
		r.dur = time.Since(r.start)
		s.observe(r)
	}
	l.cancel(nil)
	n.curRecv.Store(nil)
	if len(slots) > 0 {
		s.slotWG.Add(1) // before the result, so that Run waits for the release
		defer s.slotWG.Done()
	}
	select {
	case s.results <- r:
	case <-s.gone: // the engine gave up waiting after Abort
		release(r.held)
	}
	s.releaseSlots(slots)
}

// checkApply runs the vertex's CheckApply under its timeout, with the
// fencing tokens of the cluster slots it holds. A slot lost before or
// while it runs fails the run.
func (s *scheduler) checkApply(l launch, slots []slot) (ok bool, err error) {
	if err := lostSlot(slots); err != nil {
		return false, err // lost before it could start
	}
	ctx, cancel := l.ctx, context.CancelFunc(func() {})
	if l.timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(l.ctx, l.timeout,
			fmt.Errorf("CheckApply timed out after %v", l.timeout))
	}
	defer cancel()
	if len(slots) > 0 {
		f := fences(slots)
		l.n.curFences.Store(&f)
		defer l.n.curFences.Store(nil)
	}
	ok, err = safeCheckApply(ctx, l.n.res, l.r.apply)
	if err != nil && ctx.Err() != nil && s.applyCtx.Err() == nil {
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	if err == nil {
		// It finished, but not surely while this host held the slot. The
		// slots themselves are asked: watchLost may not have cancelled ctx
		// yet.
		if lerr := lostSlot(slots); lerr != nil {
			return false, lerr
		}
	}
	return ok, err
}

// receive sets the received values in n's resource, re-validates it, and
// tells Recv which keys changed. A panic in the resource is an error.
func receive(n *node, recv map[string]any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("recv: panicked: %v", p)
		}
	}()
	changed := make(map[string]bool, len(recv))
	for k, v := range recv {
		if err := setParam(n.res, k, v); err != nil {
			return fmt.Errorf("recv: %w", err)
		}
		changed[k] = true
	}
	if err := n.res.Validate(); err != nil {
		return fmt.Errorf("recv: received values are not valid: %w", err)
	}
	n.curRecv.Store(&changed)
	return nil
}

// finish records the outcome of a CheckApply. The steps, in order: the
// vertex stops counting as running; a removed vertex's result goes to
// finishAbandoned; a cancellation for a swap counts as not run; the
// received and sent values are settled (settleValues); the outcome is
// acted on (outcome); what a successful run consumed is recorded
// (settleConsumed); then its blockers are recounted, its semaphores
// released and the ancestors that waited for it may go (wakeWaiters).
func (s *scheduler) finish(r result) {
	n := r.n
	s.endRun(n)
	if n.removed {
		s.finishAbandoned(r)
		return
	}
	if r.err != nil && errors.Is(r.err, errReplaced) {
		// Cancelled for a swap: not a failure of the resource, and the work
		// is still due if a newer graph keeps the vertex after all.
		s.log.Info("resource cancelled for a graph swap", "resource", n.id.String())
		r.err, r.notRun = nil, true
	}
	now := time.Now()
	if r.ran {
		s.board.ran(n, r.start, r.dur, r.err == nil && !r.notRun && !r.ok)
	}
	s.settleValues(n, r, n.takeSent())
	s.outcome(n, r, now)
	s.settleConsumed(n, r)
	s.update(n)
	release(r.held)
	s.wakeWaiters(n)
}

// endRun marks n as no longer running, keeping doomedRunning (the doomed
// vertices the planned swap waits for) and the count of running
// vertices in step, and drops what only the run needed.
func (s *scheduler) endRun(n *node) {
	if n.doomed && !n.abandoned {
		s.doomedRunning--
	}
	n.running, n.abandoned = false, false
	n.applyCancel, n.semaCancel = nil, nil
	n.curRefresh.Store(false)
	s.running--
}

// takeSent returns the values the ended CheckApply sent, and empties the
// buffer for the next one.
func (n *node) takeSent() map[string]any {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	sent := n.sendBuf
	n.sendBuf = nil
	return sent
}

// settleValues settles the values of a run. One that did not apply (it
// failed or did not run) sets its received values again next time, unless
// newer ones arrived meanwhile, and its sent values are dropped. One that
// applied holds its received values, and its sent values are recorded
// (for receivers added later, see resendLastValues) and delivered.
func (s *scheduler) settleValues(n *node, r result, sent map[string]any) {
	if r.err != nil || r.notRun {
		for k, v := range r.recv {
			if _, newer := n.recvPending[k]; !newer {
				n.recvPending = setKey(n.recvPending, k, v)
			}
		}
		return
	}
	for k, v := range r.recv {
		n.recvLast = setKey(n.recvLast, k, v)
	}
	for k, v := range sent {
		n.lastSent = setKey(n.lastSent, k, v)
	}
	s.send(n, sent)
}

// settleConsumed records what the run consumed. A noop run only looked,
// so the refresh it saw is still due. A successful run that applied
// consumed its refresh (the persisted one too, unless a new one came)
// and, with RetryReset, gives back the retry budget. The record that its
// CheckApply was in flight goes in every case.
func (s *scheduler) settleConsumed(n *node, r result) {
	if r.refresh && !r.apply {
		n.refresh = true
	}
	if r.err == nil && !r.notRun {
		if r.refresh && r.apply {
			s.state.setRefresh(n.ids(), n.refresh) // consumed, unless a new one came
		}
		if n.meta.RetryReset {
			delete(s.retryUsed, n.id)
		}
	}
	if n.inflight {
		s.state.setInflight(n.ids(), false)
		n.inflight = false
	}
}

// wakeWaiters queues the ancestors that were deferred until n finished
// (see dispatch), if they may run now.
func (s *scheduler) wakeWaiters(n *node) {
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

// outcome acts on how a CheckApply ended: retry or fail, notify, log.
func (s *scheduler) outcome(n *node, r result, now time.Time) {
	switch {
	case r.notRun:
		// Stopped while waiting for a semaphore: the work is still due.
		n.dirty, n.refresh = true, n.refresh || r.refresh
	case r.err != nil:
		n.lastErr = r.err
		n.refresh = n.refresh || r.refresh // not consumed: deliver it next time
		s.conv.changed(now)
		s.failed(n, r.err, now)
	case !r.ok:
		n.checkFailed, n.lastErr = false, nil
		s.conv.changed(now)
		ev, rate := n.flap.changed(now)
		s.noteFlap(n, ev, rate)
		if !r.apply {
			// Nothing changed, so nothing is refreshed.
			n.wouldChange = true
			s.log.Log(context.Background(), n.flap.runLevel(), "resource would change (noop)", "resource", n.id.String())
			break
		}
		s.log.Log(context.Background(), n.flap.runLevel(), "resource applied", "resource", n.id.String(), "refresh", r.refresh)
		for _, c := range n.notify {
			c.refresh, c.dirty = true, true
			s.state.setRefresh(c.ids(), true)
			s.update(c)
		}
	default:
		n.checkFailed, n.wouldChange, n.lastErr = false, false, nil
		s.noteFlap(n, n.flap.settled(now), 0)
		s.log.Debug("resource in state", "resource", n.id.String())
	}
}

// finishAbandoned handles the result of a CheckApply that a swap went
// ahead without: its vertex is no longer in the graph, so nothing it sent
// or changed is delivered. Its semaphores are released and its resource,
// whose Cleanup the swap put off, is cleaned up.
func (s *scheduler) finishAbandoned(r result) {
	n := r.n
	release(r.held)
	if r.err != nil {
		s.log.Warn("a resource left behind by a graph swap failed", "resource", n.id.String(), "err", r.err)
	} else {
		s.log.Info("a resource left behind by a graph swap returned", "resource", n.id.String())
	}
	if cur := s.nodes[n.id]; cur != nil && cur.predecessor == n {
		cur.predecessor = nil // its replacement may run now
		s.update(cur)
	}
	if !n.initFailed {
		if err := safeCleanup(n.res); err != nil {
			s.log.Error("cleanup failed", "resource", n.id.String(), "err", err)
		}
	}
}

// send delivers the values n sent to the children whose parameters receive
// them.
func (s *scheduler) send(n *node, sent map[string]any) {
	for _, e := range n.sends {
		if v, ok := sent[e.Send]; ok && offer(e, v) {
			s.update(e.to)
		}
	}
}

// offer gives the receiver of e the value v unless it already has it (a
// child sees a value once: resending the value it holds changes nothing),
// and reports whether it took it.
func offer(e sendEdge, v any) bool {
	c := e.to
	if pv, pending := c.recvPending[e.Recv]; pending {
		if reflect.DeepEqual(pv, v) {
			return false
		}
	} else if lv, held := c.recvLast[e.Recv]; held && reflect.DeepEqual(lv, v) {
		return false
	}
	c.recvPending = setKey(c.recvPending, e.Recv, v)
	c.dirty = true
	return true
}

// failed handles a failed CheckApply: retry after Delay while the budget
// lasts, else mark the vertex failed.
func (s *scheduler) failed(n *node, err error, now time.Time) {
	used := s.retryUsed[n.id]
	if n.meta.Retry < 0 || used < n.meta.Retry {
		s.retryUsed[n.id] = used + 1
		n.checkFailed = false
		s.setRetryWait(n, true)
		s.timers.add(timerEntry{at: now.Add(n.meta.Delay), n: n, kind: timerRetry, gen: n.gen})
		s.log.Warn("resource failed; retrying", "resource", n.id.String(), "err", err,
			"retry", used+1, "of", retryBudget(n.meta.Retry), "delay", n.meta.Delay)
		return
	}
	n.checkFailed = true
	lvl := slog.LevelError
	if errors.Is(err, context.Canceled) && s.aborted {
		lvl = slog.LevelWarn
	}
	s.log.Log(context.Background(), lvl, "resource failed", "resource", n.id.String(), "err", err)
}
