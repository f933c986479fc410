package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/graftcm/graft/cluster/internal/backoff"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

// maxForwardInflight bounds the forwarding RPCs one node has in flight.
const maxForwardInflight = 4

// forwarder sends a follower's writes to the leader, several writers' at a
// time: while RPCs are in flight, new writes queue, and the next RPC carries
// every write queued for the same leader (group commit). A lone writer pays
// one round trip; many writers share them, as on the leader itself.
//
// Each RPC's commands are fenced (see fsm.OpFence) with the term the
// leader is believed to lead in, so a forwarded write applies at most once
// and its outcome can be learnt even when the leader never answers: once
// a leader of a later term has committed an entry, an entry of the fence's
// term that is not in the log before it never will be, and this node's own
// replica shows which it was (see resolve).
type forwarder struct {
	n *Node

	mu       sync.Mutex
	queue    []*fwdReq
	inflight int
}

type fwdReq struct {
	addr string
	cmds fsm.Encoded
	done chan fwdResult // buffered: the sender never waits on a caller
}

type fwdResult struct {
	res []fsm.Result
	err error
}

// errFenced means the leader appended a forwarded write in another term
// than its fence's: it changed nothing.
var errFenced = errors.New("the leader's term moved on before it appended the write")

// forward sends cmds to the leader at addr and returns their results. An
// error wrapped by Unreachable means the write was not applied (safe to
// send again); ErrAmbiguous that its outcome is unknown.
func (f *forwarder) forward(ctx context.Context, addr string, cmds fsm.Encoded) ([]fsm.Result, error) {
	r := &fwdReq{addr: addr, cmds: cmds, done: make(chan fwdResult, 1)}
	f.mu.Lock()
	f.queue = append(f.queue, r)
	var batch []*fwdReq
	if f.inflight < maxForwardInflight {
		f.inflight++
		batch = f.takeLocked()
	}
	f.mu.Unlock()
	if batch != nil {
		f.start(batch)
	}
	select {
	case res := <-r.done:
		return res.res, res.err
	case <-ctx.Done():
		if f.unqueue(r) {
			return nil, transport.Unreachable(ctx.Err())
		}
		// The write may still be applied by the RPC in flight.
		return nil, fmt.Errorf("%w: %w", ErrAmbiguous, ctx.Err())
	}
}

// unqueue takes r out of the queue if no RPC has taken it yet.
func (f *forwarder) unqueue(r *fwdReq) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, q := range f.queue {
		if q == r {
			f.queue = append(f.queue[:i], f.queue[i+1:]...)
			return true
		}
	}
	return false
}

// takeLocked removes from the queue the requests for the first queued
// leader address, up to one entry's worth of commands.
func (f *forwarder) takeLocked() []*fwdReq {
	if len(f.queue) == 0 {
		return nil
	}
	addr := f.queue[0].addr
	var batch, rest []*fwdReq
	n := 1 // the fence
	for i, r := range f.queue {
		// The first always goes (Apply checked it fits with a fence).
		if r.addr == addr && (i == 0 || n+r.cmds.Len() <= fsm.MaxBatch) {
			batch = append(batch, r)
			n += r.cmds.Len()
			continue
		}
		rest = append(rest, r)
	}
	f.queue = rest
	return batch
}

// start sends batch on a goroutine the node owns, then keeps sending what
// queued meanwhile.
func (f *forwarder) start(batch []*fwdReq) {
	ok := f.n.work.goRun(func() {
		for batch != nil {
			f.send(batch)
			f.mu.Lock()
			batch = f.takeLocked()
			if batch == nil {
				f.inflight--
			}
			f.mu.Unlock()
		}
	})
	if !ok { // the node is closing: nothing was sent
		for _, r := range batch {
			r.done <- fwdResult{err: transport.Unreachable(ErrClosed)}
		}
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}
}

// send makes one fenced RPC for the batch and hands each request its
// results, or the error that says whether it was applied.
func (f *forwarder) send(batch []*fwdReq) {
	parts := make([]fsm.Encoded, 1, 1+len(batch)) // the fence, then the requests
	total := 0
	for _, r := range batch {
		parts = append(parts, r.cmds)
		total += r.cmds.Len()
	}
	n := f.n
	addr := batch[0].addr
	if _, leader := n.Leader(); leader != addr {
		// Queued for a leader that is no longer this node's: not sent.
		for _, r := range batch {
			r.done <- fwdResult{err: transport.Unreachable(fmt.Errorf("the leader is no longer %s", addr))}
		}
		return
	}
	id, outcome := n.reqs.await()
	defer n.reqs.forget(id)
	term := max(n.raft.CurrentTerm(), n.termHint.Load())
	fence, err := encodeFence(term, id)
	if err != nil {
		for _, r := range batch {
			r.done <- fwdResult{err: transport.Unreachable(err)}
		}
		return
	}
	parts[0] = fence
	data, err := fsm.JoinBatch(parts...)
	if err != nil {
		if len(batch) == 1 {
			batch[0].done <- fwdResult{err: err}
			return
		}
		for _, r := range batch { // together too big for one entry
			f.send([]*fwdReq{r})
		}
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ForwardTimeout)
	defer cancel()
	restores := n.reqs.restores.Load()
	res, err := f.call(ctx, addr, term, data)
	if errors.Is(err, errOutcomeUnknown) {
		res, err = n.resolve(ctx, term, addr, outcome, restores, err)
	}
	if err == nil && len(res) != total {
		err = fmt.Errorf("cluster: %d results for %d commands", len(res), total)
	}
	off := 0
	for _, r := range batch {
		if err != nil {
			r.done <- fwdResult{err: err}
			continue
		}
		r.done <- fwdResult{res: res[off : off+r.cmds.Len()]}
		off += r.cmds.Len()
	}
}

// errOutcomeUnknown marks a call whose write may or may not be applied.
var errOutcomeUnknown = errors.New("no answer")

// call sends the fenced batch to the leader at addr and returns its
// results (the fence's left out), an error wrapped by Unreachable if it
// was not applied, or one wrapping errOutcomeUnknown. The call gives up
// early once a leader that settles the write's fate is known (see
// leaderBeyond): the old one may be cut off or frozen, and never answer.
func (f *forwarder) call(ctx context.Context, addr string, term uint64, data []byte) ([]fsm.Result, error) {
	n := f.n
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer n.onLeaderBeyond(term, addr, cancel)()
	resp, err := n.rpc.Call(ctx, addr, &transport.Request{Op: transport.OpApply, Data: data})
	switch {
	case err != nil && transport.NotSent(err):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: forwarding to leader %s: %w", errOutcomeUnknown, addr, err)
	case resp.Code == transport.CodeOK && len(resp.Results) > 0 && resp.Results[0].OK:
		return resp.Results[1:], nil
	case resp.Code == transport.CodeOK:
		n.noteTerm(resp.Term)
		return nil, transport.Unreachable(errFenced)
	case resp.Code == transport.CodeNotLeader, resp.Code == transport.CodeNotReady:
		n.noteTerm(resp.Term)
		return nil, transport.Unreachable(fmt.Errorf("%s is not the leader in term %d", addr, term))
	case resp.Code == transport.CodeUnknown:
		return nil, fmt.Errorf("%w: leader %s: %s", errOutcomeUnknown, addr, resp.Err)
	}
	return nil, remoteErr(resp.Kind, fmt.Sprintf("cluster: leader %s: %s", addr, resp.Err))
}

// noteTerm remembers a term a leader said it leads in, for the next
// fence: this node may not have heard of it yet.
func (n *Node) noteTerm(term uint64) {
	for {
		old := n.termHint.Load()
		if term <= old || n.termHint.CompareAndSwap(old, term) {
			return
		}
	}
}

// resolve learns the outcome of a fenced write sent in term to addr,
// which did not answer: from this node's replica, which applies the
// write's entry if it commits. If another node leads in term, addr
// appended nothing of term: the write was not applied. Once a leader of
// a later term reports a read index (it has committed an entry of its own
// term) and this replica has applied up to it, a write not seen by then
// never applies: its entry is not in the log before that leader's entry,
// and an entry of an earlier term can only commit before it. It returns the write's results, an
// error wrapped by Unreachable if it was not applied, or ErrAmbiguous
// with cause if ctx ends first (or a snapshot restore hid the entry).
func (n *Node) resolve(ctx context.Context, term uint64, addr string, outcome <-chan fsm.Request, restores uint64, cause error) ([]fsm.Result, error) {
	seen := func(q fsm.Request) ([]fsm.Result, error) {
		if q.Applied {
			return q.Results, nil
		}
		return nil, transport.Unreachable(errFenced)
	}
	wait := backoff.New()
	for {
		changed := n.leaderChanged.wait()
		select {
		case q := <-outcome:
			return seen(q)
		default:
		}
		if n.otherLeaderIn(term, addr) {
			return nil, transport.Unreachable(fmt.Errorf("%w, and another node leads its term", cause))
		}
		if idx, ok := n.laterReadIndex(ctx, term); ok && n.waitApplied(ctx, idx) == nil {
			select {
			case q := <-outcome:
				return seen(q)
			default:
			}
			if n.reqs.restores.Load() == restores {
				return nil, transport.Unreachable(fmt.Errorf("%w, and it was never applied", cause))
			}
			return nil, fmt.Errorf("%w: %w (a snapshot replaced the log meanwhile)", ErrAmbiguous, cause)
		}
		t := time.NewTimer(wait.Next())
		select {
		case q := <-outcome:
			t.Stop()
			return seen(q)
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", ErrAmbiguous, cause)
		}
		t.Stop()
	}
}

// laterReadIndex returns a read index from a leader of a term after term
// (this node, or the one it knows), if there is one.
func (n *Node) laterReadIndex(ctx context.Context, term uint64) (uint64, bool) {
	if n.IsLeader() {
		idx, t, err := n.leaderReadIndex()
		return idx, err == nil && t > term
	}
	_, addr := n.Leader()
	if addr == "" {
		return 0, false
	}
	resp, err := n.rpc.Call(ctx, addr, &transport.Request{Op: transport.OpReadIndex})
	if err != nil || resp.Code != transport.CodeOK {
		return 0, false
	}
	return resp.Index, resp.Term > term
}
