package raftnode

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// SetReachable tells the node which servers it can reach (the cluster
// server's gossip ring: reachable(id) reports whether id is alive in it),
// so that a write or read that finds no leader says how many voters this
// node reaches out of how many, and that a leader needs a majority of
// them. Without it the error names the voters and the majority only.
func (n *Node) SetReachable(reachable func(id string) bool) { n.reachable.Store(&reachable) }

// quorumError wraps cause, the reason no leader was found or reached,
// with sentinel and what this node knows of the quorum: on the minority
// side of a partition, that it cannot reach a majority of the voters.
func (n *Node) quorumError(sentinel, cause error) error {
	return fmt.Errorf("%w: %s: %w", sentinel, n.quorumText(), cause)
}

// quorumText says how many voters this node reaches and how many a
// leader needs.
func (n *Node) quorumText() string {
	servers, err := n.Configuration()
	if err != nil {
		return "this node cannot read its raft configuration: " + err.Error()
	}
	voters, self := 0, false
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || string(s.ID) == n.cfg.NodeID
		}
	}
	if voters == 0 {
		return "this node is in no cluster's raft configuration yet (it waits to be added to one)"
	}
	need := voters/2 + 1
	p := n.reachable.Load()
	if p == nil {
		return fmt.Sprintf("the cluster has %d voters; a leader needs a majority, %d", voters, need)
	}
	reached := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter && (string(s.ID) == n.cfg.NodeID || (*p)(string(s.ID))) {
			reached++
		}
	}
	whose := "itself included"
	if !self {
		whose = "it is not one"
	}
	text := fmt.Sprintf("this node reaches %d of the %d voters (%s); a leader needs a majority, %d", reached, voters, whose, need)
	if reached < need {
		return text + ", so this side of the cluster cannot elect one (a side that reaches a majority can, and takes the writes)"
	}
	return text + " (an election may be under way)"
}
