package raftnode

import (
	"time"

	"github.com/hashicorp/raft"
)

// RaftServer is a member of the raft configuration.
type RaftServer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Suffrage is "voter" or "nonvoter".
	Suffrage string `json:"suffrage"`
}

// Status describes the node and the cluster as the node sees them.
type Status struct {
	ID           string       `json:"id"`
	Address      string       `json:"address"`
	State        string       `json:"state"` // Leader, Follower, Candidate or Shutdown
	Leader       string       `json:"leader"`
	LeaderAddr   string       `json:"leader_address"`
	Term         uint64       `json:"term"`
	LastIndex    uint64       `json:"last_index"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Revision     uint64       `json:"revision"`
	LastContact  time.Time    `json:"last_contact,omitzero"`
	Servers      []RaftServer `json:"servers"`
}

// Status returns the node's view of the cluster.
func (n *Node) Status() Status {
	leaderID, leaderAddr := n.Leader()
	st := Status{
		ID:           n.ID(),
		Address:      n.Addr(),
		State:        n.raft.State().String(),
		Leader:       leaderID,
		LeaderAddr:   leaderAddr,
		Term:         n.raft.CurrentTerm(),
		LastIndex:    n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		Revision:     n.fsm.Rev(),
	}
	if n.raft.State() != raft.Leader {
		st.LastContact = n.raft.LastContact()
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			suf := "voter"
			if s.Suffrage != raft.Voter {
				suf = "nonvoter"
			}
			st.Servers = append(st.Servers, RaftServer{ID: string(s.ID), Address: string(s.Address), Suffrage: suf})
		}
	}
	return st
}
