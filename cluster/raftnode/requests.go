package raftnode

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"

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

// maxRequestID bounds the length of a request ID: 16 hex digits, a dash
// and a base-36 uint64.
const maxRequestID = 16 + 1 + 13

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
