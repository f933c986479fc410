// Package raftnode runs a node of graft's raft group: it replicates the
// World's state machine (package fsm) to every node, takes writes on any
// node (followers forward them to the leader) and serves linearizable reads.
//
// The node's RPC goes over package transport, where it registers the
// handlers of its own operations; in tests, raft's in-memory transport and
// an in-memory RPC network stand in for the cluster port (package
// clustertest). Membership (who is in the raft configuration) is package
// cluster's: it reads and changes the configuration only through the
// Node's narrow surface (Configuration, AddNonvoter, AddVoter,
// RemoveServer, TransferLeadership, Term, LastIndex, Status), and nothing
// outside this package touches raft itself.
//
// # Writes
//
// Apply hands commands to the leader, which batches concurrent writes into
// one log entry each time raft is ready for more: a lone writer pays one
// round trip, many writers share them. A follower forwards to the leader and,
// while there is none, waits (bounded by ForwardTimeout) for one.
//
// A write is fenced with the leader's term (fsm.OpFence), by the leader
// itself or by the follower that forwards it: it
// applies only in an entry of that term, so it applies at most once. When
// the leader stops answering (it froze, was cut off, or its answer was
// lost), the follower does not wait out ForwardTimeout: once a leader of a
// later term has committed an entry, the write's outcome is settled, and
// the follower's own replica shows it: applied (with the results the
// leader computed, since every replica computes the same), or never, in
// which case it goes to the new leader. A leader that loses its
// leadership before its own write commits learns the outcome the same
// way. So a leader's loss costs a write about an election; ErrAmbiguous is
// left for outcomes the deadline cut short.
//
// # Reads
//
// Reads are served by the local FSM. Linearize makes a read linearizable: it
// asks the leader for its commit index (the leader first confirms with a
// quorum that it still leads) and waits until the local FSM has applied it.
package raftnode
