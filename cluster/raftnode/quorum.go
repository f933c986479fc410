package raftnode

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftcm/graft/cluster/transport"
	"github.com/hashicorp/raft"
)

// reachTimeout bounds how long a write or read that found no leader asks
// the other voters whether they answer, to say how many this node
// reaches.
const reachTimeout = time.Second

// quorumError wraps cause, the reason no leader was found or reached,
// with sentinel and what this node knows of the quorum: on the minority
// side of a partition, that it cannot reach a majority of the voters.
func (n *Node) quorumError(sentinel, cause error) error {
	return fmt.Errorf("%w: %s: %w", sentinel, n.quorumText(), cause)
}

// quorumText says how many voters this node reaches (those that answer
// on the cluster port within reachTimeout, itself included) and how many
// a leader needs.
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
	reached := n.reachedVoters(servers)
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

// reachedVoters counts the voters among servers that this node reaches:
// itself, and those that answer a call on the cluster port within
// reachTimeout.
func (n *Node) reachedVoters(servers []raft.Server) int {
	ctx, cancel := context.WithTimeout(n.ctx, reachTimeout)
	defer cancel()
	var reached atomic.Int32
	var wg sync.WaitGroup
	for _, s := range servers {
		switch {
		case s.Suffrage != raft.Voter:
		case string(s.ID) == n.cfg.NodeID:
			reached.Add(1)
		default:
			wg.Go(func() {
				// Any answer will do: "not ready" comes from a node reached.
				if _, err := n.rpc.Call(ctx, string(s.Address), &transport.Request{Op: transport.OpStats}); err == nil {
					reached.Add(1)
				}
			})
		}
	}
	wg.Wait()
	return int(reached.Load())
}
