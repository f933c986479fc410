package raftnode

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
)

// caughtUp records whether the FSM has applied what the raft log held when
// the node started. A restarted node's FSM holds only its last snapshot:
// raft replays the log beyond it only once it learns the commit index from
// a leader, so until then a local read would answer from older state than
// the node served before it stopped.
type caughtUp struct {
	index uint64      // the log's last index right after raft started; set once in start
	done  atomic.Bool // set once the FSM reached index; never cleared
}

// CaughtUp reports whether this node's FSM has applied every entry its raft
// log held when the node started (true at once for a node that started with
// no log). From then on local reads answer from a state at least as new as
// the one the node had before it stopped, leader or not; once true it stays
// true.
//
// Entries beyond the snapshot that were never committed, and which a new
// leader replaced, count as applied once the FSM has what replaced them
// (the log then ends before index).
func (n *Node) CaughtUp() bool {
	if n.caught.done.Load() {
		return true
	}
	target := min(n.caught.index, n.raft.LastIndex())
	applied := n.fsm.Applied()
	// Raft never hands its own no-op and barrier entries to the FSM, so the
	// FSM may stop short of target when the log ends with them: they count
	// once raft has dispatched everything up to target (as in waitApplied).
	if applied < target && (n.raft.AppliedIndex() < target || !n.onlyRaftEntries(applied+1, target)) {
		return false
	}
	n.caught.done.Store(true)
	return true
}

// LogCaughtUp logs once this node's copy of the state holds every write
// the cluster committed before it started (until then, local reads may
// miss recent writes), trying until ctx ends or the node closes.
func (n *Node) LogCaughtUp(ctx context.Context, log *slog.Logger) {
	for {
		err := n.Linearize(ctx)
		switch {
		case err == nil:
			log.Info("local state caught up with the cluster", "revision", n.fsm.Rev())
			return
		case ctx.Err() != nil, errors.Is(err, ErrClosed):
			return
		}
		log.Debug("not caught up with the cluster yet", "err", err)
	}
}
