package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// requests are the fenced writes this node has sent to a leader and waits
// to see applied by its own replica (see OpFence and forwarder.send).
//
// Every replica applies the same log to the same state, so the sender of a
// write learns its outcome, and the very results the leader computed, from
// its own FSM: when the entry carrying the write's fence is applied here,
// the waiter is told whether the fence held.
type requests struct {
	nonce string        // tells this process's requests from another's
	seq   atomic.Uint64 // numbers them

	mu      sync.Mutex
	waiting map[string]chan fsm.Request

	// restores counts snapshot restores: an entry covered by a snapshot
	// this replica installs is never applied here one by one, so a wait
	// across a restore cannot tell "not applied" from "not seen".
	restores atomic.Uint64
}

func newRequests() *requests {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return &requests{nonce: hex.EncodeToString(b[:]), waiting: map[string]chan fsm.Request{}}
}

// await returns a new request ID and the channel its outcome is delivered
// on once this replica applies it. Call forget when done.
func (r *requests) await() (string, <-chan fsm.Request) {
	id := r.nonce + "-" + strconv.FormatUint(r.seq.Add(1), 36)
	ch := make(chan fsm.Request, 1)
	r.mu.Lock()
	r.waiting[id] = ch
	r.mu.Unlock()
	return id, ch
}

func (r *requests) forget(id string) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
}

// applied hands the outcomes of an entry's fenced groups to their waiters,
// if they wait on this node. It runs on raft's FSM goroutine and never
// blocks.
func (r *requests) applied(reqs []fsm.Request) {
	if len(reqs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range reqs {
		if ch, ok := r.waiting[q.ID]; ok {
			select {
			case ch <- q:
			default: // an ID is sent once, so applied once
			}
		}
	}
}

// signal is a broadcast: wait returns a channel that closes at the next
// fire.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// watchLeader fires n.leaderChanged on every change of leader raft
// reports, until ctx ends.
func (n *Node) watchLeader(ctx context.Context) {
	ch := make(chan raft.Observation, 4)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			n.leaderChanged.fire()
		}
	}
}

// newerLeader reports whether this node knows a leader in a term after
// term.
func (n *Node) newerLeader(term uint64) bool {
	id, _ := n.Leader()
	return id != "" && n.raft.CurrentTerm() > term
}

// newerLeaderPoll bounds how long a leader of a later term can go
// unnoticed: raft reports a change of leader, not a leader re-elected in a
// later term.
const newerLeaderPoll = 25 * time.Millisecond

// onNewerLeader calls fn once this node knows a leader of a term after
// term, unless the returned stop is called first; stop returns once the
// watch has ended.
func (n *Node) onNewerLeader(term uint64, fn func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(newerLeaderPoll)
		defer t.Stop()
		for {
			changed := n.leaderChanged.wait()
			if n.newerLeader(term) {
				fn()
				return
			}
			select {
			case <-quit:
				return
			case <-changed:
			case <-t.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
