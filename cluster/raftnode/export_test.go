package raftnode

import "github.com/hashicorp/raft"

// RaftOf gives the package's external tests the node's raft instance,
// which nothing outside the node touches otherwise.
func RaftOf(n *Node) *raft.Raft { return n.raft }
