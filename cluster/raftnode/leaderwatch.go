package raftnode

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

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
// reports, and notes another node leading in n.contacts, until ctx ends.
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
		case o := <-ch:
			if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" && string(lo.LeaderID) != n.cfg.NodeID {
				n.contacts.follow(n.raft.CurrentTerm()) // see LeaderContact
			}
			n.leaderChanged.fire()
		}
	}
}

// leaderBeyond reports whether this node knows a leader that settles the
// fate of a write fenced for term and sent to addr: a leader of a later
// term, or another node than addr leading in term itself (there is one
// leader per term, so addr cannot append an entry of term).
func (n *Node) leaderBeyond(term uint64, addr string) bool {
	id, leader := n.Leader()
	if id == "" {
		return false
	}
	cur := n.raft.CurrentTerm()
	return cur > term || cur == term && leader != addr
}

// otherLeaderIn reports whether another node than addr is known to lead
// in exactly term: then addr appended no entry of term.
func (n *Node) otherLeaderIn(term uint64, addr string) bool {
	id, leader := n.Leader()
	return id != "" && leader != addr && n.raft.CurrentTerm() == term
}

// newerLeaderPoll bounds how long a leader of a later term can go
// unnoticed: raft reports a change of leader, not a leader re-elected in a
// later term.
const newerLeaderPoll = 25 * time.Millisecond

// onLeaderBeyond calls fn once leaderBeyond(term, addr) holds, unless the
// returned stop is called first; stop returns once the watch has ended.
func (n *Node) onLeaderBeyond(term uint64, addr string, fn func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(newerLeaderPoll)
		defer t.Stop()
		for {
			changed := n.leaderChanged.wait()
			if n.leaderBeyond(term, addr) {
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

// LogLeadership logs every change of the cluster's leader as this node
// sees it, until ctx ends or the node closes.
func (n *Node) LogLeadership(ctx context.Context, log *slog.Logger) {
	last, started := "", false
	for {
		// Wait for the change after this read: the leader is read from
		// raft each time, so a change between two wakes loses nothing.
		changed := n.leaderChanged.wait()
		if id, addr := n.Leader(); id != last || !started {
			switch {
			case id == n.ID():
				log.Info("this node is the cluster leader", "term", n.Term())
			case id != "":
				log.Info("cluster leader", "leader", id, "leader_addr", addr)
			case started:
				log.Warn("lost the cluster leader; waiting for a new one")
			default:
				log.Info("waiting for a cluster leader")
			}
			last, started = id, true
		}
		select {
		case <-ctx.Done():
			return
		case <-n.ctx.Done():
			return
		case <-changed:
		}
	}
}
