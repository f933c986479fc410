package cluster

import (
	"context"
	"path/filepath"
	"time"
)

// A fresh node that remembers peers (see PeerStore) waits to be added to
// their cluster rather than start one of its own. If nobody lets it in
// (they are down or moved, or its key is not theirs: a node whose key
// file was removed makes a new one), it would wait in silence for good.

// aloneWarnAfter is how long such a node may stay alone before it says
// why it waits and what to do; aloneWarnEvery how often it says it again.
const (
	aloneWarnAfter = 30 * time.Second
	aloneWarnEvery = 10 * time.Minute
)

// warnWhileAlone warns, after aloneWarnAfter and then every
// aloneWarnEvery, while this node, fresh and waiting to be added to the
// cluster of the peers it remembers, sees nobody in its ring. It returns
// once raft has given the node state, or when ctx ends.
func (s *Server) warnWhileAlone(ctx context.Context, remembered []string) {
	t := time.NewTimer(aloneWarnAfter)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.node.LastIndex() > 0 {
			return // added
		}
		if !s.hasPeer() {
			s.warnAlone(remembered, time.Since(start))
		}
		t.Reset(aloneWarnEvery)
	}
}

// warnAlone says that the node waits alone, and what to do.
func (s *Server) warnAlone(remembered []string, waited time.Duration) {
	args := []any{"remembered", remembered, "waited", waited.Round(time.Second)}
	if s.cfg.Raft.DataDir != "" && !s.cfg.Raft.InMemory {
		args = append(args, "peers_file", filepath.Join(s.cfg.Raft.DataDir, peersFile))
	}
	if s.cfg.Token != nil {
		args = append(args, "fingerprint", s.cfg.Token.Fingerprint())
	}
	s.log.Warn("no member of the cluster this node remembers has let it in: without raft state, it waits to be "+
		"added to their cluster and starts none of its own. If they are up and reachable, this node's cluster "+
		"key is not theirs: start it with the cluster's key in --token or GRAFT_TOKEN to rejoin. To start a new "+
		"cluster instead, stop it and remove its remembered peers (peers_file)", args...)
}
