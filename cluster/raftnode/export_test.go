package raftnode

import "github.com/hashicorp/raft"

// RaftOf gives the package's external tests the node's raft instance,
// which nothing outside the node touches otherwise.
func RaftOf(n *Node) *raft.Raft { return n.raft }

// NoSpace gives the package's external tests the error of the node's last
// write to its full data dir, nil while it is not full.
func NoSpace(n *Node) error { return n.noSpace() }
