package raftnode

import (
	"time"

	"github.com/hashicorp/raft"
)

// The raft configuration as the membership side (Server) reads and
// changes it, and what it observes of raft besides: nothing outside the
// node touches raft itself. A change waits for raft's answer, at most
// timeout (0: no bound), and fails on a node that does not lead.

// Configuration returns the servers of this node's latest raft
// configuration.
func (n *Node) Configuration() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// AddNonvoter adds id at addr as a non-voter, or gives a server already in
// the configuration that address, keeping it a non-voter.
func (n *Node) AddNonvoter(id, addr string, timeout time.Duration) error {
	return n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error()
}

// AddVoter adds id at addr as a voter, or promotes it (or gives it that
// address) if it is in the configuration already.
func (n *Node) AddVoter(id, addr string, timeout time.Duration) error {
	return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error()
}

// RemoveServer removes id from the configuration.
func (n *Node) RemoveServer(id string, timeout time.Duration) error {
	return n.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error()
}

// TransferLeadership hands this leader's leadership to another voter.
func (n *Node) TransferLeadership() error { return n.raft.LeadershipTransfer().Error() }

// Term returns raft's current term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// LastIndex returns the last index of this node's raft log.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// Snapshot makes raft snapshot the state machine now, which lets it
// compact its log (it does so by itself past SnapshotThreshold entries).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }
