package raftnode

import (
	"context"
	"sync"
)

// gate counts the work in progress on a node (calls that use raft, and the
// node's goroutines) so that Close can wait for all of it while raft still
// runs, and only then shut raft down.
//
// The order matters: hashicorp/raft answers a future (Apply, Barrier) only
// from its main loop. A future still queued when raft shuts down is never
// answered and its Error blocks for ever; raft queues Apply and Barrier in a
// buffered channel, so this happens whenever Shutdown lands between the
// enqueue and the main loop's next read (for instance right after an
// election, before the new leader's loop starts). Waiting for every caller
// first, with raft alive, gets each future answered.
type gate struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter counts one piece of work, unless the gate is closed.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// exit ends a piece of work counted by enter.
func (g *gate) exit() { g.wg.Done() }

// goRun runs fn on a goroutine counted by the gate, unless it is closed.
func (g *gate) goRun(fn func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.exit()
		fn()
	}()
	return true
}

// close refuses new work and waits for the work in progress.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// bind returns ctx, also cancelled when the node closes, so that no call
// outlives the node by more than the time it takes to notice.
func (n *Node) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
