// Package cluster manages the membership of graft's raft group: a Server
// runs a raft node (package raftnode) in a gossip ring (memberlist),
// joins, leaves, bootstraps only when that is safe, and, while it leads,
// makes the raft configuration follow the ring.
//
// One TCP port carries everything between nodes (package transport, where
// the node and the server each register the handlers of their own RPC
// operations); the cluster key and what is derived from it are package
// clusterkey's. In tests, in-memory networks stand in for the ports
// (package clustertest).
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
// Node's narrow surface (see package raftnode).
package cluster
