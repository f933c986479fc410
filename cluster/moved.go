package cluster

import (
	"context"
	"slices"
	"time"
)

// movedAnnounceInterval is how often a node that came back at another
// cluster address tells the members it remembers that it lives there now,
// until raft has its new address.
const movedAnnounceInterval = 2 * time.Second

// movedAnnounceFor bounds how long it keeps telling them: well past the
// time the ring takes to declare its old address dead and let its name
// be reclaimed from another address (DeadNodeReclaimTime later).
const movedAnnounceFor = 3 * time.Minute

// movedFrom returns the cluster address the raft configuration this node
// started on gives it, if it is another than the one it has now: the
// node was moved (DHCP, a migrated VM) or its port changed.
func (s *Server) movedFrom() (string, bool) {
	servers, err := s.node.Configuration()
	if err != nil {
		return "", false
	}
	for _, srv := range servers {
		if string(srv.ID) == s.cfg.Raft.NodeID {
			return string(srv.Address), string(srv.Address) != s.node.Addr()
		}
	}
	return "", false
}

// announceMoveLoop makes a moved node's new address known to its peers.
// The ring refuses a live member's name from a new address until its old
// one has been dead for DeadNodeReclaimTime, and a node that holds peers
// already would push its state again only at its next push/pull: long
// enough for the leader to remove it from raft as gone. So it pushes its
// state to every member it knows every movedAnnounceInterval, until raft
// lists it at its new address (the leader readdressed it), or ctx ends.
func (s *Server) announceMoveLoop(ctx context.Context, from string) {
	s.log.Info("this node's cluster address changed since it last ran: telling its peers",
		"from", from, "to", s.node.Addr())
	deadline := time.Now().Add(movedAnnounceFor)
	tick := time.NewTicker(movedAnnounceInterval)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, moved := s.movedFrom(); !moved {
			s.log.Info("raft has this node's new cluster address", "address", s.node.Addr())
			return
		}
		if peers := s.knownPeerAddrs(); len(peers) > 0 {
			if _, err := s.ml.Join(peers); err != nil {
				s.log.Debug("telling the peers this node's new address", "err", joinCauses(err))
			}
		}
	}
	s.log.Warn("raft still has this node's old cluster address", "from", from, "after", movedAnnounceFor)
}

// knownPeerAddrs returns the gossip addresses of the other members this
// node has seen, but those it knows dead or gone: a join tries each
// address in turn, and one that no longer answers holds it up to
// TCPTimeout (the reconnect loop tries those).
func (s *Server) knownPeerAddrs() []string {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	var out []string
	for name, addr := range s.addrs {
		if _, gone := s.gone[name]; !gone && name != s.cfg.Raft.NodeID {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}
