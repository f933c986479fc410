package cluster

import (
	"errors"
	"fmt"
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

// recordStateKey records the server's key as the one its node's raft
// state is made under, if the node holds no cluster's log yet: its state
// is made from now on, under that key.
func (s *Server) recordStateKey() {
	if s.cfg.Token == nil || s.node.StartedOnLog() {
		return
	}
	if err := s.node.RecordStateKey(s.cfg.Token.Fingerprint()); err != nil {
		s.log.Warn("could not record the key of this node's raft state beside it", "err", err)
	}
}

// StateKeyFingerprint returns the fingerprint of the cluster key this
// node's raft state was made under: the key of the server that started it
// holding no cluster's log. Adopting another key later does not change
// it; the record goes with the raft state. It is "" if not known (raft
// state made by an older graft, or without a key).
func (s *Server) StateKeyFingerprint() string { return s.node.StateKeyFingerprint() }
