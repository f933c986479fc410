package engine

import (
	"slices"
	"sync"
	"time"
)

// State is what a vertex is doing, as Engine.Snapshot reports it.
type State string

// The states of a vertex. When more than one applies, the first in this
// list wins.
const (
	// StateRunning: its CheckApply is in progress.
	StateRunning State = "running"
	// StateWaiting: it needs a CheckApply but waits first; ResourceStatus.
	// Waiting says for what.
	StateWaiting State = "waiting"
	// StateFailed: its last CheckApply failed (a retry may be due, see
	// ResourceStatus.RetriesLeft and Waiting), or its Init or Watch failed.
	StateFailed State = "failed"
	// StateDirty: it needs a CheckApply, which is about to start.
	StateDirty State = "dirty"
	// StateOK: its last CheckApply found it in state or put it there.
	StateOK State = "ok"
)

// What a waiting (or failed) vertex waits for, in ResourceStatus.Waiting.
const (
	WaitSemaphores   = "semaphores"   // its CheckApply waits for Meta.Sema or Config.Sema
	WaitDependencies = "dependencies" // a vertex it depends on has work pending
	WaitRetry        = "retry"        // a failed CheckApply waits Meta.Delay to run again
	WaitWatch        = "watch"        // its Watch is starting or restarting
	WaitLimit        = "limit"        // an event waits for the rate limit (Meta.Limit)
	WaitSwap         = "swap"         // a planned graph swap replaces it
)

// ResourceStatus is the status of one vertex of the running graph.
type ResourceStatus struct {
	ID    ID
	State State
	// Waiting is what the vertex waits for (one of the Wait* constants) when
	// it is waiting, or failed and due to be retried; empty otherwise.
	Waiting string
	// Error is the text of the last failure (CheckApply, Init or Watch);
	// empty once a CheckApply succeeds.
	Error string
	// LastStart is when the last (or current) CheckApply began; zero if none
	// has run. LastDuration is how long the last finished one took.
	LastStart    time.Time
	LastDuration time.Duration
	// Changed reports whether the last finished CheckApply changed
	// something (with apply off: found something to change). Changes counts
	// the CheckApply calls that did, since the engine started.
	Changed bool
	Changes int
	// RetriesLeft is what is left of the CheckApply retry budget
	// (Meta.Retry); -1 means unlimited.
	RetriesLeft int
	// SemaHeld lists the vertex's semaphore tags (Meta.Sema) while its
	// CheckApply holds them; SemaWaiting while it waits for them.
	SemaHeld    []string
	SemaWaiting []string
}

// Counts counts the vertices of the running graph by state.
type Counts struct {
	Total, OK, Dirty, Running, Waiting, Failed int
	// Changed counts the vertices that changed something since the engine
	// started (ResourceStatus.Changes > 0).
	Changed int
}

// Snapshot is the status of the running graph at one moment.
type Snapshot struct {
	// Graph is the name of the running graph; empty before the first.
	Graph string
	// Converged is the converged state last reported (see
	// Config.ConvergedTimeout); always false with convergence off.
	Converged bool
	Counts    Counts
	// Resources lists every vertex, sorted by kind then name.
	Resources []ResourceStatus
}

// Observer is told about every CheckApply the engine runs.
type Observer interface {
	// CheckApplyDone is called once after each CheckApply returns, from the
	// goroutine that ran it (so calls may be concurrent), before the
	// scheduler sees the result: it must return quickly and never block.
	CheckApplyDone(ApplyEvent)
	// GraphSwapped is called once after each graph is swapped in (the
	// first included), from the scheduler: it must return at once.
	GraphSwapped(SwapEvent)
}

// SwapEvent describes one graph swapped in.
type SwapEvent struct {
	Graph string
	// Duration is how long the swap held the scheduler: stopping the
	// removed vertices, rewiring, starting the added ones.
	Duration             time.Duration
	Added, Removed, Kept int
}

// ApplyEvent describes one finished CheckApply.
type ApplyEvent struct {
	ID       ID
	Duration time.Duration
	// Changed reports whether it changed something (with apply off: found
	// something to change); Noop whether it ran with apply off.
	Changed bool
	Noop    bool
	Err     error
}

// Snapshot returns the status of every vertex of the running graph. It is
// cheap (a copy made under a lock the scheduler holds only briefly) and safe
// to call from any goroutine at any time; before Run it is empty. After Run
// returns it keeps the last status.
func (e *Engine) Snapshot() Snapshot { return e.board.snapshot() }

// Counts returns Snapshot().Counts without copying out the status of every
// vertex: cheap enough for a progress line refreshed several times a
// second on a graph of thousands.
func (e *Engine) Counts() Counts {
	if e.board == nil {
		return Counts{}
	}
	return e.board.counts()
}

// board holds the status the scheduler publishes for Snapshot. The
// scheduler writes each vertex's base status (publish); the CheckApply
// goroutine marks when its call begins, after the semaphores (applying).
type board struct {
	mu        sync.Mutex
	graph     string
	g         *Graph // the running graph, for GraphStatus; never modified
	converged bool
	entries   map[ID]*boardEntry
}

type boardEntry struct {
	owner    *node // the node the status is of; a replacement takes over
	st       ResourceStatus
	launched bool // a CheckApply is launched: waiting for semaphores, then running
	applying bool // the launched CheckApply has begun
	sema     bool // the launched CheckApply waits for semaphores before it begins
	tags     []string
}

func newBoard() *board { return &board{entries: map[ID]*boardEntry{}} }

// applying records that n's launched CheckApply began at start.
func (b *board) applying(n *node, start time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[n.id]; e != nil && e.owner == n && e.launched {
		e.applying = true
		e.st.LastStart = start
	}
}

// ran records a finished CheckApply of n.
func (b *board) ran(n *node, start time.Time, d time.Duration, changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[n.id]
	if e == nil || e.owner != n {
		return
	}
	e.st.LastStart, e.st.LastDuration, e.st.Changed = start, d, changed
	if changed {
		e.st.Changes++
	}
}

// setConverged records the converged state.
func (b *board) setConverged(c bool) {
	b.mu.Lock()
	b.converged = c
	b.mu.Unlock()
}

// retain drops the entries of the vertices not in nodes and records g
// as the running graph; the others keep their history (a replaced
// vertex's too). A vertex new to the board gets its base status at once,
// so that the board always holds every vertex of the graph it names.
func (b *board) retain(g *Graph, nodes map[ID]*node) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.graph, b.g = g.Name, g
	for id := range b.entries {
		if nodes[id] == nil {
			delete(b.entries, id)
		}
	}
	for id, n := range nodes {
		if b.entries[id] == nil {
			st := ResourceStatus{ID: id, RetriesLeft: -1}
			st.State, st.Waiting = baseState(n)
			b.entries[id] = &boardEntry{owner: n, st: st}
		}
	}
}

// publish writes the base status of each of nodes, as the scheduler sees
// it. It runs on the scheduler goroutine.
func (b *board) publish(s *scheduler, nodes []*node) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range nodes {
		if n.removed {
			continue
		}
		e := b.entries[n.id]
		if e == nil {
			e = &boardEntry{st: ResourceStatus{ID: n.id}}
			b.entries[n.id] = e
		}
		if e.owner != n {
			e.owner, e.launched, e.applying = n, false, false
		}
		e.st.State, e.st.Waiting = baseState(n)
		e.st.Error = ""
		if n.lastErr != nil {
			e.st.Error = n.lastErr.Error()
		}
		e.st.RetriesLeft = -1
		if n.meta.Retry >= 0 {
			e.st.RetriesLeft = max(n.meta.Retry-s.retryUsed[n.id], 0)
		}
		e.tags = n.meta.Sema
		e.sema = len(n.meta.Sema) > 0 || s.global != nil
		if e.launched && !n.running {
			e.applying = false
		}
		e.launched = n.running
	}
}

// baseState is n's state and what it waits for, as far as the scheduler
// knows: a running vertex may still wait for its semaphores, which only
// the board knows.
func baseState(n *node) (State, string) {
	switch {
	case n.running:
		return StateRunning, ""
	case n.retryWait:
		return StateFailed, WaitRetry
	case n.failed():
		return StateFailed, ""
	case n.watchRetryWait:
		return StateWaiting, WaitWatch
	case !n.dirty:
		return StateOK, ""
	case !n.started:
		return StateWaiting, WaitWatch
	case n.doomed || n.predecessor != nil:
		return StateWaiting, WaitSwap
	case n.held:
		return StateWaiting, WaitLimit
	case n.blockers > 0:
		return StateWaiting, WaitDependencies
	}
	return StateDirty, ""
}

// snapshot copies the status out, sorted, with the counts.
func (b *board) snapshot() Snapshot {
	snap, _ := b.snapshotGraph()
	return snap
}

// snapshotGraph copies the status out, sorted, with the counts, and
// returns the graph it is the status of (nil before the first).
func (b *board) snapshotGraph() (Snapshot, *Graph) {
	if b == nil {
		return Snapshot{}, nil
	}
	b.mu.Lock()
	g := b.g
	snap := Snapshot{Graph: b.graph, Converged: b.converged,
		Resources: make([]ResourceStatus, 0, len(b.entries))}
	for _, e := range b.entries {
		st := e.st
		st.State, st.Waiting = e.state()
		if e.launched {
			if st.State == StateRunning {
				st.SemaHeld = slices.Clone(e.tags)
			} else {
				st.SemaWaiting = slices.Clone(e.tags)
			}
		}
		snap.Resources = append(snap.Resources, st)
	}
	b.mu.Unlock()
	slices.SortFunc(snap.Resources, func(a, b ResourceStatus) int { return compareIDs(a.ID, b.ID) })
	snap.Counts = countStates(snap.Resources)
	return snap, g
}

// state is the entry's state and what it waits for: a launched CheckApply
// runs once it has begun or needs no semaphores, else waits for them.
func (e *boardEntry) state() (State, string) {
	switch {
	case !e.launched:
		return e.st.State, e.st.Waiting
	case e.applying || !e.sema:
		return StateRunning, ""
	}
	return StateWaiting, WaitSemaphores
}

// counts counts the entries by state without copying them out.
func (b *board) counts() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Counts{Total: len(b.entries)}
	for _, e := range b.entries {
		st, _ := e.state()
		c.add(st, e.st.Changes)
	}
	return c
}

// add counts one vertex in state st that changed something changes times.
func (c *Counts) add(st State, changes int) {
	switch st {
	case StateOK:
		c.OK++
	case StateDirty:
		c.Dirty++
	case StateRunning:
		c.Running++
	case StateWaiting:
		c.Waiting++
	case StateFailed:
		c.Failed++
	}
	if changes > 0 {
		c.Changed++
	}
}

func countStates(rs []ResourceStatus) Counts {
	c := Counts{Total: len(rs)}
	for _, r := range rs {
		c.add(r.State, r.Changes)
	}
	return c
}

// markPublish queues n for the next publish.
func (s *scheduler) markPublish(n *node) {
	if !n.pubQueued {
		n.pubQueued = true
		s.pub = append(s.pub, n)
	}
}

// publishStatus publishes the status of the vertices that changed since
// the last round.
func (s *scheduler) publishStatus() {
	if len(s.pub) == 0 {
		return
	}
	s.board.publish(s, s.pub)
	for i, n := range s.pub {
		n.pubQueued = false
		s.pub[i] = nil
	}
	s.pub = s.pub[:0]
}

// boardNotify wraps the converged notification so the board records it.
func boardNotify(b *board, notify func(Status)) func(Status) {
	return func(st Status) {
		b.setConverged(st.Converged)
		if notify != nil {
			notify(st)
		}
	}
}

// observeSwap tells the Observer about a graph swapped in.
func (s *scheduler) observeSwap(ev SwapEvent) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.GraphSwapped(ev)
	}
}

// observe tells the Observer about a finished CheckApply.
func (s *scheduler) observe(r result) {
	if s.cfg.Observer == nil {
		return
	}
	s.cfg.Observer.CheckApplyDone(ApplyEvent{ID: r.n.id, Duration: r.dur,
		Changed: r.err == nil && !r.ok, Noop: !r.apply, Err: r.err})
}
