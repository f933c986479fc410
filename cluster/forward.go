package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/graftcm/graft/fsm"
)

// maxForwardInflight bounds the forwarding RPCs one node has in flight.
const maxForwardInflight = 4

// forwarder sends a follower's writes to the leader, several writers' at a
// time: while RPCs are in flight, new writes queue, and the next RPC carries
// every write queued for the same leader (group commit). A lone writer pays
// one round trip; many writers share them, as on the leader itself.
type forwarder struct {
	n *Node

	mu       sync.Mutex
	queue    []*fwdReq
	inflight int
}

type fwdReq struct {
	addr string
	cmds []fsm.Command
	done chan fwdResult // buffered: the sender never waits on a caller
}

type fwdResult struct {
	resp *Response
	err  error
}

// forward sends cmds to the leader at addr and returns its response, or the
// RPC's error (wrapped by Unreachable when nothing was sent).
func (f *forwarder) forward(ctx context.Context, addr string, cmds []fsm.Command) (*Response, error) {
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
		return res.resp, res.err
	case <-ctx.Done():
		// The write may still be applied by the RPC in flight.
		return nil, fmt.Errorf("%w: %w", ErrAmbiguous, ctx.Err())
	}
}

// takeLocked removes from the queue the requests for the first queued
// leader address, up to one entry's worth of commands.
func (f *forwarder) takeLocked() []*fwdReq {
	if len(f.queue) == 0 {
		return nil
	}
	addr := f.queue[0].addr
	var batch, rest []*fwdReq
	n := 0
	for _, r := range f.queue {
		if r.addr == addr && n+len(r.cmds) <= fsm.MaxBatch {
			batch = append(batch, r)
			n += len(r.cmds)
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
			r.done <- fwdResult{err: Unreachable(ErrClosed)}
		}
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}
}

// send makes one RPC for the batch and hands each request its results.
func (f *forwarder) send(batch []*fwdReq) {
	all := make([]fsm.Command, 0, len(batch))
	for _, r := range batch {
		all = append(all, r.cmds...)
	}
	data, err := fsm.EncodeBatch(all)
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
	ctx, cancel := context.WithTimeout(f.n.ctx, f.n.cfg.ForwardTimeout)
	defer cancel()
	resp, err := f.n.rpc.Call(ctx, batch[0].addr, &Request{Op: rpcApply, Data: data})
	if err == nil && resp.Code == codeOK && len(resp.Results) != len(all) {
		err = fmt.Errorf("cluster: leader sent %d results for %d commands", len(resp.Results), len(all))
	}
	off := 0
	for _, r := range batch {
		switch {
		case err != nil:
			r.done <- fwdResult{err: err}
		case resp.Code != codeOK:
			r.done <- fwdResult{resp: resp}
		default:
			part := *resp
			part.Results = resp.Results[off : off+len(r.cmds)]
			r.done <- fwdResult{resp: &part}
		}
		off += len(r.cmds)
	}
}
