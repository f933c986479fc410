package raftnode

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/transport"
)

// serveOwn registers the node's own RPC handlers: its progress, for any
// node, and, while it leads, forwarded writes and read indexes.
func (n *Node) serveOwn() {
	n.handlers.Handle(transport.OpStats, n.serveStats)
	n.HandleAsLeader(transport.OpApply, n.handleApply)
	n.HandleAsLeader(transport.OpReadIndex, n.serveReadIndex)
}

// HandleRPC answers an RPC from another node with the handler registered
// for its op. A node that is still starting (the cluster port serves
// before raft exists) or already stopping does nothing and answers
// transport.CodeNotReady.
func (n *Node) HandleRPC(ctx context.Context, req *transport.Request) *transport.Response {
	select {
	case <-n.ready:
	default:
		return &transport.Response{Code: transport.CodeNotReady, Err: "the node is starting"}
	}
	if !n.work.enter() {
		return &transport.Response{Code: transport.CodeNotReady, Err: "the node is stopping"}
	}
	defer n.work.exit()
	return n.handlers.Serve(ctx, req)
}

// HandleAsLeader registers h to answer op's requests while this node
// leads; a node that does not lead answers transport.CodeNotLeader with
// the leader's address, if it knows it. The membership server registers
// its own operations so.
func (n *Node) HandleAsLeader(op uint8, h transport.Handler) {
	n.handlers.Handle(op, func(ctx context.Context, req *transport.Request) *transport.Response {
		if !n.IsLeader() {
			_, addr := n.Leader()
			return &transport.Response{Code: transport.CodeNotLeader, Leader: addr}
		}
		return h(ctx, req)
	})
}

// serveStats answers with this node's raft progress.
func (n *Node) serveStats(context.Context, *transport.Request) *transport.Response {
	return &transport.Response{Code: transport.CodeOK, Index: n.raft.LastIndex(), Applied: n.fsm.Applied(), Term: n.raft.CurrentTerm()}
}

// serveReadIndex answers with this leader's commit index, its leadership
// confirmed (see leaderReadIndex).
func (n *Node) serveReadIndex(context.Context, *transport.Request) *transport.Response {
	idx, term, err := n.leaderReadIndex()
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return &transport.Response{Code: transport.CodeNotLeader}
		}
		return &transport.Response{Code: transport.CodeFailed, Err: err.Error()}
	}
	return &transport.Response{Code: transport.CodeOK, Index: idx, Term: term}
}

// Call sends req to the node at addr over the cluster's RPC and waits for
// its answer (see transport.Net): the membership server's way to ask
// other nodes for their progress, or the leader to take a leave.
func (n *Node) Call(ctx context.Context, addr string, req *transport.Request) (*transport.Response, error) {
	return n.rpc.Call(ctx, addr, req)
}
