// Package cluster runs a node of graft's raft group: it replicates the
// World's state machine (package fsm) to every node, takes writes on any
// node (followers forward them to the leader) and serves linearizable reads.
//
// One TCP port carries everything between nodes: the first byte of each
// connection says whether it is raft's traffic or graft's forwarding RPC
// (package transport, where the node and the server each register the
// handlers of their own RPC operations). In tests, raft's in-memory
// transport and an in-memory RPC network stand in for it (package
// clustertest). The cluster key and what is derived from it are package
// clusterkey's.
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
//
// # Membership
//
// A Server runs a node in a gossip ring (memberlist) and, while it leads,
// makes the raft configuration follow the ring: plan decides a pass from a
// view taken at its start (raft's servers, the ring, the departures, the
// servers' progress, the time, what earlier passes remembered, the
// configuration), and execute carries the actions out while the node still
// leads in the term the pass began in. The bootstrap-expect decision is
// decideExpect, on the ring alone. Each loop has its own wake channel.
// The Server reads and changes the raft configuration only through the
// Node's narrow surface (Configuration, AddNonvoter, AddVoter,
// RemoveServer, TransferLeadership, Term, LastIndex): nothing outside the
// node touches raft itself.
package cluster
