package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrOtherCluster is matched (errors.Is) by an *OtherClusterError.
var ErrOtherCluster = errors.New("cluster: the node belongs to another cluster")

// OtherClusterError says that a node of this cluster's name was refused
// because it belongs to another bootstrapped cluster: the two were started
// apart, and raft cannot merge their states. Join returns it when every
// seed that answered was of another cluster.
type OtherClusterError struct {
	Peer      string // the other node's name
	ClusterID string // the other node's cluster
	Local     string // this node's cluster
}

func (e *OtherClusterError) Error() string {
	return fmt.Sprintf("node %s belongs to cluster ID %s, this node to cluster ID %s: they were started apart and "+
		"do not merge. A node that never had a peer joins another cluster when told to (graft join, or graft run "+
		"--join), setting its own aside; one that had peers must leave its cluster (graft leave) and start on an "+
		"empty data dir", e.Peer, e.ClusterID, e.Local)
}

// Is makes errors.Is(err, ErrOtherCluster) hold.
func (e *OtherClusterError) Is(target error) bool { return target == ErrOtherCluster }

// noteRefusal records a merge refused because the peer is of another
// cluster, for Join to report. A merge refused while Join runs is taken
// for Join's: memberlist does not say which of its merges a refusal ended
// (one a stranger began at that moment could be taken for it).
func (s *Server) noteRefusal(err error) {
	var other *OtherClusterError
	switch {
	case errors.As(err, &other):
		s.refusal.Store(other)
		s.refusals.Add(1)
	case errors.Is(err, errIDUnknown):
		s.idWaits.Add(1)
	}
}

// errIDUnknown is matched by the refusal of a merge of two rings that
// started on raft state of their own while one does not know its
// cluster's ID yet.
var errIDUnknown = errors.New("a cluster ID is not known yet")

// NeverHadPeer reports whether this node has never had a peer: no other
// server is in its raft configuration, no other node in its ring, and it
// remembers none (the data dir's peer file, which keeps every member a
// node has seen). Such a node may adopt another cluster key, and may set
// its own one-node cluster aside to join another cluster: nobody else
// holds its key or its state.
func (s *Server) NeverHadPeer() bool {
	if s.inRaftWithOthers() || s.hasPeer() {
		return false
	}
	s.goneMu.Lock()
	seen := len(s.gone) > 0
	for name := range s.addrs {
		seen = seen || name != s.cfg.Raft.NodeID
	}
	s.goneMu.Unlock()
	if seen {
		return false
	}
	if s.peers == nil {
		return true
	}
	addrs, err := s.peers.Load()
	return err == nil && len(addrs) == 0
}

// RememberedPeers returns the gossip addresses of the members a node on
// the data dir dir has seen (the file its servers keep; nil if none): a
// node that remembers none has never had a peer, unless its raft state
// says otherwise (see Server.NeverHadPeer).
func RememberedPeers(dir string) ([]string, error) {
	addrs, err := filePeers(filepath.Join(dir, peersFile)).Load()
	if err != nil {
		return nil, fmt.Errorf("cluster: reading %s: %w", filepath.Join(dir, peersFile), err)
	}
	return addrs, nil
}

// PeersFile is the name of the file, in a data dir, that remembers the
// gossip addresses of the members its node has seen.
const PeersFile = peersFile

// clusterIDStableKey keeps the cluster ID in raft's stable store (beside
// raft's own keys), so that a node restarting on its state gossips its
// cluster's ID from the start: the state machine has it only once raft
// has replayed the log, and meanwhile a node of another cluster would take
// the node for a fresh one and add it to raft.
const clusterIDStableKey = "graft-cluster-id"

// storedClusterID returns the cluster ID kept in the stable store, "" if
// none.
func (n *Node) storedClusterID() string {
	b, err := n.stable.Get([]byte(clusterIDStableKey))
	if err != nil {
		return ""
	}
	return string(b)
}

// storeClusterID keeps the cluster ID in the stable store.
func (n *Node) storeClusterID(id string) error {
	return n.stable.Set([]byte(clusterIDStableKey), []byte(id))
}
