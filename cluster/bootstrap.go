package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/raftnode"
)

// ErrNotFresh is matched by the error of BootstrapFresh on a node that
// belongs to a cluster, or may: it started on raft state, knows a
// cluster's ID, or holds a log (a leader added it).
var ErrNotFresh = errors.New("cluster: this node is not fresh")

// bootstrapAlone bootstraps a new cluster of this node alone.
func (s *Server) bootstrapAlone() error {
	err := s.node.Bootstrap([]raftnode.RaftServer{{ID: s.cfg.Raft.NodeID, Address: s.node.Addr()}})
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("%w: raft holds state (it was added to a cluster meanwhile)", ErrNotFresh)
	}
	if err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return nil
}

// BootstrapFresh makes this running server, fresh and waiting to be added
// to a cluster, start a new one-node cluster instead, as a fresh node with
// nobody to join does when it starts: for a decision taken after the
// server started (discovery's, when the node it was to join is gone). The
// fresh nodes in its gossip ring are then added by its reconciler, as any
// ring member is. It refuses, with ErrNotFresh, a node that started on
// raft state, knows a cluster's ID, or holds a log; raft itself refuses a
// node that took a term or an entry since.
func (s *Server) BootstrapFresh() error {
	switch {
	case s.node.HasState():
		return fmt.Errorf("%w: it started on raft state", ErrNotFresh)
	case s.ClusterID() != "":
		return fmt.Errorf("%w: it belongs to cluster %s", ErrNotFresh, s.ClusterID())
	case s.node.LastIndex() > 0:
		return fmt.Errorf("%w: it holds a raft log", ErrNotFresh)
	}
	if err := s.bootstrapAlone(); err != nil {
		return err
	}
	s.log.Info("bootstrapped a new one-node cluster; the fresh nodes in its gossip ring are added to it")
	// It holds a cluster's log now: gossiped, so that no leader of another
	// cluster takes it for a fresh node before it knows its cluster's ID.
	s.bootstrapped.Store(true)
	if err := s.updateMeta(); err != nil {
		s.log.Warn("could not gossip that this node holds raft state", "err", err)
	}
	s.kick()
	return nil
}
