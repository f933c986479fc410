package raftnode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/internal/backoff"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

// Apply applies commands to the cluster's state through the leader and
// returns their results. Every node accepts writes: a follower forwards them
// to the leader, waiting (up to ForwardTimeout, or ctx's deadline) for one to
// exist. The results are those of the leader's FSM; this node's FSM applies
// the same entry soon after, so a local read that must see the write should
// first call Linearize (or WaitApplied).
func (n *Node) Apply(ctx context.Context, cmds []fsm.Command) ([]fsm.Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	enc, err := n.checkWrite(cmds) // encoded once: each entry that carries it joins these bytes
	if err != nil {
		return nil, err // too big or invalid: say so before queueing it
	}
	if !n.work.enter() {
		return nil, ErrClosed
	}
	defer n.work.exit()
	ctx, cancel := n.bind(ctx)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ForwardTimeout)
		defer cancel()
	}
	wait := backoff.New()
	var unreached error // why the last forwarding attempt was not applied
	for {
		if n.ctx.Err() != nil {
			return nil, ErrClosed
		}
		if err := n.damage.failed(); err != nil {
			return nil, err // this node stores nothing more
		}
		if n.IsLeader() {
			res, err := n.applyLocal(ctx, enc)
			if err == nil || !transport.NotSent(err) {
				return res, err
			}
			// Not applied: safe to try again wherever the leader is now.
		} else if id, addr := n.Leader(); addr != "" {
			res, err := n.fwd.forward(ctx, addr, enc)
			switch {
			case err == nil:
				return res, nil
			case transport.NotSent(err):
				// Not applied (the leader was unreachable, not the leader
				// any more, or its term moved on): safe to retry.
				unreached = fmt.Errorf("leader %s at %s: %w", id, addr, err)
			default:
				return nil, err
			}
		} else if err := n.noSpace(); err != nil && n.soleVoter() {
			return nil, err // no other node can lead while this one's disk is full
		}
		if err := wait.Sleep(ctx); err != nil {
			if unreached != nil {
				return nil, n.quorumError(ErrLeaderUnreachable, fmt.Errorf("%w; last attempt: %w", err, unreached))
			}
			noLeader := n.quorumError(ErrNoLeader, err)
			if full := n.noSpace(); full != nil {
				return nil, fmt.Errorf("%w; %w", noLeader, full)
			}
			return nil, noLeader
		}
	}
}

// applyLocal applies cmds through this node's batcher, fenced with the
// term it leads in, as a forwarded write is (see forwarder): so a write
// whose leader loses leadership before the entry commits is resolved from
// this replica once another leader has committed, rather than left
// ambiguous. An error wrapped by Unreachable means it was not applied.
func (n *Node) applyLocal(ctx context.Context, cmds fsm.Encoded) ([]fsm.Result, error) {
	id, outcome := n.reqs.await()
	defer n.reqs.forget(id)
	term := n.raft.CurrentTerm()
	fence, err := encodeFence(term, id)
	if err != nil {
		return nil, err
	}
	restores := n.reqs.restores.Load()
	want := 1 + cmds.Len()
	res, err := n.batch.submit(ctx, true, fence, cmds)
	switch {
	case err == nil && len(res) == want && res[0].OK:
		return res[1:], nil
	case err == nil && len(res) == want:
		return nil, transport.Unreachable(errFenced)
	case err == nil:
		return nil, fmt.Errorf("cluster: %d results for %d commands", len(res), want)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, transport.Unreachable(err) // never appended
	case errors.Is(err, raft.ErrRaftShutdown):
		return nil, ErrClosed
	case errors.Is(err, ErrNoSpace), errors.Is(err, ErrDamagedState):
		return nil, err // this leader could not store the entry: never appended
	case ctx.Err() != nil:
		return nil, mapRaftErr(err) // no time left to find out
	}
	// Appended, perhaps, then leadership was lost: the log will tell.
	return n.resolve(ctx, term, n.Addr(), outcome, restores, fmt.Errorf("%w: %w", errOutcomeUnknown, err))
}

// checkWrite checks a write against the limits of one log entry, with
// room for the fence a forwarded write carries, so that a write that fits
// fits wherever it is made, and returns it encoded.
func (n *Node) checkWrite(cmds []fsm.Command) (fsm.Encoded, error) {
	for i := range cmds {
		if cmds[i].Op == fsm.OpFence {
			return fsm.Encoded{}, fmt.Errorf("cluster: command %d: fences are graft's own", i)
		}
	}
	enc, err := fsm.EncodeCommands(cmds)
	if err != nil {
		return fsm.Encoded{}, err
	}
	if err := fsm.CheckJoin(n.worstFence, enc); err != nil {
		return fsm.Encoded{}, err
	}
	return enc, nil
}

// worstFence returns the largest fence a write can carry, encoded.
func worstFence() fsm.Encoded {
	enc, err := encodeFence(math.MaxUint64, strings.Repeat("x", maxRequestID))
	if err != nil {
		panic(fmt.Sprintf("raftnode: the largest fence does not encode: %v", err)) // a bug: maxRequestID broke fsm's limits
	}
	return enc
}

// encodeFence encodes the fence of a write sent in term as request id.
func encodeFence(term uint64, id string) (fsm.Encoded, error) {
	return fsm.EncodeCommands([]fsm.Command{{Op: fsm.OpFence, Term: term, Request: id}})
}

// mapRaftErr turns raft's errors into the package's.
func mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrAmbiguous, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return err
}

// handleApply applies a forwarded batch on the leader. A batch fenced for
// another term than this leader's is refused at once (the fence would
// keep it from applying anyway), with the term, so the sender can fence
// its next attempt right.
func (n *Node) handleApply(ctx context.Context, req *transport.Request) *transport.Response {
	cmds, enc, err := fsm.SplitBatch(req.Data, 0)
	if err != nil {
		return &transport.Response{Code: transport.CodeFailed, Err: err.Error()}
	}
	for i := 1; i < len(cmds); i++ {
		if cmds[i].Op == fsm.OpFence {
			return &transport.Response{Code: transport.CodeFailed, Err: fmt.Sprintf("command %d: a forwarded batch has one fence, first", i)}
		}
	}
	term := n.raft.CurrentTerm()
	if len(cmds) > 0 && cmds[0].Op == fsm.OpFence && cmds[0].Term != term {
		return &transport.Response{Code: transport.CodeNotLeader, Term: term}
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.batch.submit(ctx, len(cmds) > 0 && cmds[0].Op == fsm.OpFence, enc)
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		_, addr := n.Leader()
		return &transport.Response{Code: transport.CodeNotLeader, Leader: addr, Term: n.raft.CurrentTerm()}
	case errors.Is(err, ErrNoSpace), errors.Is(err, ErrDamagedState):
		// Not stored, so never appended: a failure, not an unknown outcome.
		return failed(err)
	case err != nil:
		// It may have been appended: only the log will tell.
		return &transport.Response{Code: transport.CodeUnknown, Err: mapRaftErr(err).Error()}
	}
	return &transport.Response{Code: transport.CodeOK, Results: res}
}

// Linearize returns once this node's FSM reflects every write committed
// before the call: a local read after it is linearizable.
func (n *Node) Linearize(ctx context.Context) error {
	if !n.work.enter() {
		return ErrClosed
	}
	defer n.work.exit()
	ctx, cancel := n.bind(ctx)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ForwardTimeout)
		defer cancel()
	}
	wait := backoff.New()
	for {
		if n.ctx.Err() != nil {
			return ErrClosed
		}
		if n.IsLeader() {
			idx, _, err := n.leaderReadIndex()
			if err == nil {
				return n.waitApplied(ctx, idx)
			}
		} else if _, addr := n.Leader(); addr != "" {
			resp, err := n.rpc.Call(ctx, addr, &transport.Request{Op: transport.OpReadIndex})
			if err == nil && resp.Code == transport.CodeOK {
				return n.waitApplied(ctx, resp.Index)
			}
		}
		if err := wait.Sleep(ctx); err != nil {
			return n.quorumError(ErrNoLeader, err)
		}
	}
}

// leaderReadIndex returns a commit index that covers every write committed
// before the call, and the term this node leads in. A new leader first
// commits an entry of its own term (a barrier), since until then its
// commit index may miss entries its predecessor committed; it then
// confirms with a quorum that it still leads.
func (n *Node) leaderReadIndex() (index, term uint64, err error) {
	term = n.raft.CurrentTerm()
	if n.termReady.Load() != term {
		if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
			return 0, 0, err
		}
		n.termReady.Store(term)
	}
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, 0, err
	}
	if n.raft.CurrentTerm() != term {
		return 0, 0, raft.ErrLeadershipLost
	}
	return n.raft.CommitIndex(), term, nil
}

// WaitApplied returns once this node's FSM has applied the log up to index.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error { return n.waitApplied(ctx, index) }

// waitApplied waits until the FSM has applied every entry up to index.
// Raft hands entries to the FSM asynchronously (its applied index moves
// when it dispatches them, before the FSM has them), and never hands it its
// own no-op and barrier entries. So the FSM's applied index is what counts,
// and once raft has dispatched everything up to index, entries between the
// FSM's index and index that the FSM never sees are skipped by reading
// their types from the log.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		changed := n.fsm.Changed()
		applied := n.fsm.Applied()
		if applied >= index || (n.raft.AppliedIndex() >= index && n.onlyRaftEntries(applied+1, index)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrClosed
		case <-changed:
		case <-tick.C:
		}
	}
}

// onlyRaftEntries reports whether the log entries from..to are all of kinds
// raft keeps from the FSM.
func (n *Node) onlyRaftEntries(from, to uint64) bool {
	var l raft.Log
	for i := from; i <= to; i++ {
		if err := n.logs.GetLog(i, &l); err != nil {
			return false // compacted: a snapshot restore will move the FSM's index
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// batcher turns concurrent writes on the leader into as few log entries as
// raft can take: each entry carries every request waiting when it is made.
type batcher struct {
	raft     *raft.Raft
	timeout  time.Duration
	reqs     chan *applyReq
	inflight chan struct{} // bounds entries awaiting commit
	wg       sync.WaitGroup
	stopped  chan struct{} // closed when run has returned: every request it took is answered
}

type applyReq struct {
	parts  []fsm.Encoded // the request's commands, in order
	n      int           // how many
	fenced bool          // the first is a fence, which guards the rest
	done   chan applyResp
}

type applyResp struct {
	res []fsm.Result
	err error
}

const maxInflight = 256

func newBatcher(r *raft.Raft, timeout time.Duration) *batcher {
	return &batcher{raft: r, timeout: timeout, reqs: make(chan *applyReq, 1024), inflight: make(chan struct{}, maxInflight),
		stopped: make(chan struct{})}
}

// submit queues the commands of parts, in order, and waits for their
// results; fenced says the first is a fence. Once the batcher has
// stopped, a request it never took fails with raft.ErrRaftShutdown: it
// was not applied.
func (b *batcher) submit(ctx context.Context, fenced bool, parts ...fsm.Encoded) ([]fsm.Result, error) {
	r := &applyReq{parts: parts, fenced: fenced, done: make(chan applyResp, 1)}
	for _, p := range parts {
		r.n += p.Len()
	}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stopped:
		return nil, raft.ErrRaftShutdown
	}
	select {
	case resp := <-r.done:
		return resp.res, resp.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrAmbiguous, ctx.Err())
	case <-b.stopped:
		select {
		case resp := <-r.done: // answered before run returned
			return resp.res, resp.err
		default:
			return nil, raft.ErrRaftShutdown
		}
	}
}

// run forms batches until ctx ends, then waits for the entries in flight.
func (b *batcher) run(ctx context.Context) {
	defer close(b.stopped)
	defer b.wg.Wait()
	var carry *applyReq
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.reqs:
			case <-ctx.Done():
				b.drain(raft.ErrRaftShutdown)
				return
			}
		}
		batch, n := []*applyReq{first}, first.n
	gather:
		for n < fsm.MaxBatch {
			select {
			case r := <-b.reqs:
				if n+r.n > fsm.MaxBatch {
					carry = r
					break gather
				}
				batch, n = append(batch, r), n+r.n
			default:
				break gather
			}
		}
		b.send(ctx, batch)
	}
}

// send appends one entry for the batch (or one per request, if together
// they are too big for an entry) and delivers results when it commits.
func (b *batcher) send(ctx context.Context, batch []*applyReq) {
	// A fence guards the commands after it up to the next one: the
	// requests it does not open go first.
	slices.SortStableFunc(batch, func(x, y *applyReq) int {
		return cmp.Compare(fencedFirst(x), fencedFirst(y))
	})
	size, total := 0, 0
	for _, r := range batch {
		size, total = size+len(r.parts), total+r.n
	}
	parts := make([]fsm.Encoded, 0, size)
	for _, r := range batch {
		parts = append(parts, r.parts...)
	}
	data, err := fsm.JoinBatch(parts...)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			b.send(ctx, []*applyReq{r})
		}
		return
	}
	if err != nil {
		batch[0].done <- applyResp{err: err}
		return
	}
	select {
	case b.inflight <- struct{}{}:
	case <-ctx.Done():
		for _, r := range batch {
			r.done <- applyResp{err: raft.ErrRaftShutdown}
		}
		return
	}
	f := b.raft.Apply(data, b.timeout)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() { <-b.inflight }()
		err := f.Error()
		var res []fsm.Result
		if err == nil {
			switch v := f.Response().(type) {
			case []fsm.Result:
				res = v
			case error:
				err = v
			default:
				err = fmt.Errorf("cluster: unexpected apply response %T", v)
			}
		}
		if err == nil && len(res) != total {
			err = fmt.Errorf("cluster: %d results for %d commands", len(res), total)
		}
		off := 0
		for _, r := range batch {
			if err != nil {
				r.done <- applyResp{err: err}
				continue
			}
			r.done <- applyResp{res: res[off : off+r.n]}
			off += r.n
		}
	}()
}

// fencedFirst is 1 for a request that an OpFence opens, else 0.
func fencedFirst(r *applyReq) int {
	if r.fenced {
		return 1
	}
	return 0
}

// drain fails the requests still queued.
func (b *batcher) drain(err error) {
	for {
		select {
		case r := <-b.reqs:
			r.done <- applyResp{err: err}
		default:
			return
		}
	}
}

// ApplyAsLeader applies commands only if this node leads: used by the
// reconciler, whose decisions must never reach the log after it lost the
// leadership they were made under.
func (n *Node) ApplyAsLeader(ctx context.Context, cmds []fsm.Command) ([]fsm.Result, error) {
	if !n.IsLeader() {
		return nil, raft.ErrNotLeader
	}
	enc, err := fsm.EncodeCommands(cmds)
	if err != nil {
		return nil, err
	}
	res, err := n.batch.submit(ctx, false, enc)
	return res, mapRaftErr(err)
}
