package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Signals a Watch goroutine sends its vertex, or'ed into node.sig.
const (
	sigRunning   uint32 = 1 << iota // Watch is ready
	sigEvent                        // the state may have changed
	sigWatchExit                    // Watch returned; see node.watchErr
)

// node is the engine's run-time state for one vertex, grouped by concern
// in the embedded structs below. Unless a field says otherwise it is
// touched only by the scheduler goroutine; the few that other goroutines
// (a Watch, a CheckApply) touch are atomic or guarded, and say so.
type node struct {
	// What the vertex is; set when the node is made, never changed.
	id   ID
	res  Res
	meta Meta

	graphLinks
	watchState
	applyState
	waitState
	flowState
	semaState
	swapState
}

// graphLinks is a node's place in the running graph and what the ordering
// guarantee needs: its edges, and how many parents hold it back. A swap
// rebuilds them (see rewire and recountBlockers).
type graphLinks struct {
	parents  []*node
	children []*node
	notify   []*node // children reached through notify edges
	sends    []sendEdge

	blockers int     // parents that are busy
	busy     bool    // pending work here or above; see scheduler.busy
	queued   bool    // in the ready queue, or waiting on a running descendant
	waiters  []*node // ancestors deferred until this vertex finishes
	mark     uint64  // for descendant searches and swap plans; see scheduler.epoch
}

// watchState is the state of a node's Watch (or poll) and of its
// resource's life: Init, start-up, failures and restarts.
type watchState struct {
	sig      atomic.Uint32 // pending signals from Watch, see sig*; set by the Watch goroutine
	watchErr error         // written by the Watch goroutine before sigWatchExit

	watchCancel  context.CancelFunc
	watchDone    chan struct{}
	started      bool // Watch reported running
	dead         bool // Init or Watch failed: never runs again as it is
	initFailed   bool // Init failed, so Cleanup is not due
	watchRetries int  // Watch failures used from Meta.Retry
}

// applyState is the state of a node's CheckApply: whether one is due or
// running, and how the last one ended.
type applyState struct {
	dirty       bool                    // needs a CheckApply
	running     bool                    // CheckApply in flight
	checkFailed bool                    // the last CheckApply failed and has no retry left
	wouldChange bool                    // the last CheckApply, with apply off, found it out of state
	inflight    bool                    // its CheckApply is on record as in flight (see stateStore)
	flap        flapMeter               // changing runs, for flap damping
	applyCancel context.CancelCauseFunc // cancels the running CheckApply
	lastErr     error                   // the last failure (CheckApply, Init or Watch); nil after a success
	pubQueued   bool                    // queued for the next status publish (see scheduler.pub)
}

// waitState holds a node's waits on the scheduler's timers (retries,
// Watch restarts, the rate limit; polls need no flag). Each flag is
// counted in scheduler.waiting while set.
type waitState struct {
	retryWait      bool          // a failed CheckApply waits Delay to run again
	watchRetryWait bool          // a failed Watch waits Delay to restart
	held           bool          // an event waits for the rate limit
	limiter        *rate.Limiter // nil without Meta.Limit
	gen            uint64        // bumped to invalidate this node's timers
}

// flowState is what flows into and out of a node along its edges:
// refreshes from notify edges and values over send/recv edges. The cur*
// fields and the send buffer are what the running CheckApply's Runtime
// reads and writes from its own goroutine.
type flowState struct {
	refresh    bool                            // a notify edge delivered a refresh not yet consumed
	curRefresh atomic.Bool                     // Refresh() during the current CheckApply
	curRecv    atomic.Pointer[map[string]bool] // Recv() during the current CheckApply

	recvPending map[string]any // received values to set before the next CheckApply
	recvLast    map[string]any // received values the resource holds
	lastSent    map[string]any // values sent by successful CheckApply calls

	sendMu  sync.Mutex
	sendBuf map[string]any // values sent by the current CheckApply; guarded by sendMu
}

// semaState is a node's hold on its semaphores (see sema.go and
// clustersema.go).
type semaState struct {
	semaCancel context.CancelFunc                // ends its wait for semaphores, if any
	curFences  atomic.Pointer[map[string]uint64] // Fences() during the current CheckApply
}

// swapState is a node's part in a planned or applied graph swap (see
// plan.go and swap.go).
type swapState struct {
	removed     bool      // no longer in the graph
	doomed      bool      // a planned swap replaces or removes it: no new CheckApply
	abandoned   bool      // a swap went ahead without waiting for its CheckApply
	touched     bool      // in the planned swap's touched list
	predecessor *node     // the abandoned vertex it replaces, until that returns
	doomedAt    time.Time // when the planned swap doomed it
	cancelledAt time.Time // when the swap cancelled its CheckApply
}

// failed reports whether the vertex is failed: its last CheckApply failed
// with no retry left, or it is dead.
func (n *node) failed() bool { return n.checkFailed || n.dead }

// ids returns the IDs the vertex stands for: its own, or its members' if it
// is a group. Refreshes are recorded under these, so they survive a change
// of grouping.
func (n *node) ids() []ID {
	if g, ok := n.res.(*group); ok {
		return g.Members()
	}
	return []ID{n.id}
}

// waiting reports whether the vertex waits on a timer.
func (n *node) waiting() bool { return n.retryWait || n.watchRetryWait || n.held }

// inbox carries signals from Watch goroutines to the scheduler without ever
// blocking the sender: signals or into the node's flag word, and a node is
// queued only when its word goes from zero to non-zero.
type inbox struct {
	mu   sync.Mutex
	q    []*node
	wake chan struct{}
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

func (b *inbox) signal(n *node, f uint32) {
	if n.sig.Or(f) != 0 {
		return // already queued; the scheduler will see f when it swaps the word
	}
	b.mu.Lock()
	b.q = append(b.q, n)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// drain moves the queued nodes into buf and returns it.
func (b *inbox) drain(buf []*node) []*node {
	b.mu.Lock()
	buf = append(buf, b.q...)
	clear(b.q)
	b.q = b.q[:0]
	b.mu.Unlock()
	return buf
}
