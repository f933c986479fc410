package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/internal/atomicfile"
)

// peersFile remembers, in the data dir, the gossip addresses of the
// cluster's members, so a node that restarts (even the whole cluster at
// once) finds the others without being told.
const peersFile = "gossip-peers.json"

// PeerStore keeps the gossip addresses of the members a node has seen.
type PeerStore interface {
	Load() ([]string, error)
	Save(addrs []string) error
}

// filePeers is a PeerStore in a JSON file.
type filePeers string

func (p filePeers) Load() ([]string, error) {
	b, err := atomicfile.Read(string(p), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var addrs []string
	if err := json.Unmarshal(b, &addrs); err != nil {
		return nil, fmt.Errorf("%s is damaged, not a JSON list of gossip addresses (%w): it only remembers where "+
			`the cluster's members are: remove it, or write one member's gossip address into it as ["HOST:PORT"]`,
			string(p), err)
	}
	return addrs, nil
}

func (p filePeers) Save(addrs []string) error {
	b, err := json.Marshal(addrs)
	if err != nil {
		return err
	}
	return atomicfile.Write(string(p), b, 0o600, false)
}

// MemoryPeers is a PeerStore in memory, for tests that restart servers.
type MemoryPeers struct {
	mu    sync.Mutex
	addrs []string
}

func (m *MemoryPeers) Load() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.addrs), nil
}

func (m *MemoryPeers) Save(addrs []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addrs = slices.Clone(addrs)
	return nil
}

// Join joins the ring through any of addrs (gossip addresses) and returns
// how many nodes answered. When none let this node in and one refused it
// for belonging to another cluster, the error is an *OtherClusterError. A
// node with raft state first waits, at most clusterIDWait, to know its
// cluster's ID (see awaitClusterID), failing with ErrClusterIDUnknown if
// it does not; and it asks again, for as long, seeds that do not know
// theirs yet (see compatible).
func (s *Server) Join(addrs []string) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, clusterIDWait)
	known := s.awaitClusterID(ctx, 0)
	cancel()
	switch {
	case s.ctx.Err() != nil:
		return 0, raftnode.ErrClosed
	case !known:
		return 0, fmt.Errorf("cluster: join %s: %w", strings.Join(addrs, ", "), s.idUnknownError())
	}
	deadline := time.Now().Add(clusterIDWait)
	for {
		refusals, waits := s.refusals.Load(), s.idWaits.Load()
		n, err := s.ml.Join(addrs)
		switch {
		case err == nil || n > 0:
			return n, nil
		case s.refusals.Load() != refusals && s.refusal.Load() != nil:
			return 0, fmt.Errorf("cluster: join %s: %w", strings.Join(addrs, ", "), s.refusal.Load())
		case s.idWaits.Load() == waits || time.Now().After(deadline):
			return 0, fmt.Errorf("cluster: no address answered: %w", joinCauses(err))
		}
		t := time.NewTimer(s.cfg.ReconcileInterval)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return 0, raftnode.ErrClosed
		case <-t.C:
		}
	}
}

// joinCauses turns memberlist's join error, a go-multierror that renders
// as "1 error occurred:" and a tab-indented list, into errors.Join of its
// causes: one line for each address that failed, each naming it.
func joinCauses(err error) error {
	var list interface{ WrappedErrors() []error }
	if errors.As(err, &list) && len(list.WrappedErrors()) > 0 {
		return errors.Join(list.WrappedErrors()...)
	}
	return err
}

// joinLoop joins the configured seeds, retrying with backoff (0.5s
// doubling to 30s) until one answers, or until the node is in a ring
// with others some other way (`graft join`, or another node joining it).
// A node with raft state waits to know its cluster's ID first, for as
// long as it takes (see awaitClusterID).
func (s *Server) joinLoop(ctx context.Context) {
	if !s.awaitClusterID(ctx, clusterIDWait) {
		return
	}
	wait := time.Second / 2
	for {
		if s.hasPeer() {
			s.log.Info("in the cluster's gossip ring through another member: no longer trying the seeds", "seeds", s.cfg.Join)
			return
		}
		n, err := s.Join(s.cfg.Join)
		var other *OtherClusterError
		switch {
		case err == nil:
			s.log.Info("joined the cluster's gossip ring", "seeds", s.cfg.Join, "answered", n)
			return
		case errors.As(err, &other):
			s.joinOtherCluster(other)
			return
		case !s.hasPeer():
			s.log.Warn("could not join yet; retrying", "seeds", s.cfg.Join, "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.joinWake:
			t.Stop()
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// clusterIDWait is how long a node with raft state may not know its
// cluster's ID before it says why it joins nobody, and how long Join
// waits for it.
const clusterIDWait = 10 * time.Second

// ErrClusterIDUnknown is matched by the error of a join of a node that
// started on raft state of its own but does not know its cluster's ID:
// it joins nobody until it does (see Server.Join).
var ErrClusterIDUnknown = errors.New("cluster: this node has raft state but does not know its cluster's ID yet")

// idUnknownError says why a node with raft state but no cluster ID joins
// nobody, and what to do.
func (s *Server) idUnknownError() error {
	return fmt.Errorf("%w (neither its raft log nor its snapshot holds it: its cluster had not recorded one "+
		"when this node took its state, and no leader of its cluster has sent it since): it joins no other "+
		"node until it does, since another cluster would take it for a fresh node and add its raft state to "+
		"theirs. Start enough of its cluster's servers for a quorum; or, to move it to another cluster, stop "+
		"it, move raft/, token and %s out of %s, and start it with that cluster's key and --join",
		ErrClusterIDUnknown, peersFile, s.cfg.Raft.DataDir)
}

// AwaitsClusterID reports whether this node started on raft state that
// does not name its cluster, and has not learnt its cluster's ID since: it
// joins nobody until it does (see Join), and says why after
// clusterIDWait.
func (s *Server) AwaitsClusterID() bool { return s.node.StartedOnLog() && s.ClusterID() == "" }

// awaitClusterID waits, for a node that started on raft state that does
// not name its cluster (see idUnknownError), until it learns its
// cluster's ID or ctx ends: a node that joined seeds of another cluster
// without it would look fresh to them, and they would add it to their
// raft. If it has waited warnAfter (0: never), it logs, once, why it
// waits and what to do. It reports whether the ID is known (or needs not
// be).
func (s *Server) awaitClusterID(ctx context.Context, warnAfter time.Duration) bool {
	if !s.AwaitsClusterID() {
		return true
	}
	var warn <-chan time.Time
	if warnAfter > 0 {
		t := time.NewTimer(warnAfter)
		defer t.Stop()
		warn = t.C
	}
	tick := time.NewTicker(s.cfg.ReconcileInterval / 2)
	defer tick.Stop()
	for s.ClusterID() == "" {
		select {
		case <-ctx.Done():
			return false
		case <-warn:
			s.log.Error("joining no other node until this node knows its cluster's ID", "err", s.idUnknownError(), "waited", warnAfter)
		case <-tick.C:
		}
	}
	return true
}

// joinOtherCluster handles seeds that belong to another cluster: a node
// that never had a peer hands over to its owner to be started afresh;
// one that had peers can never join them, and says what to do.
func (s *Server) joinOtherCluster(other *OtherClusterError) {
	if s.NeverHadPeer() && s.cfg.OnOtherCluster != nil {
		s.log.Warn("the seeds belong to another cluster, and this node never had a peer: "+
			"setting its own one-node cluster aside to join theirs",
			"seeds", s.cfg.Join, "cluster_id", other.ClusterID, "own_cluster_id", other.Local)
		s.cfg.OnOtherCluster(other)
		return
	}
	s.log.Error("the seeds belong to another cluster, which this node, a member of its own, can never join: "+
		"no longer trying them. To move this node, make it leave its cluster (graft leave), then start it on an "+
		"empty data dir with the other cluster's key and --join; to stay, remove --join",
		"seeds", s.cfg.Join, "cluster_id", other.ClusterID, "own_cluster_id", other.Local)
}

// hasPeer reports whether another node is alive in this node's ring.
func (s *Server) hasPeer() bool {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	for name := range s.ring {
		if name != s.cfg.Raft.NodeID {
			return true
		}
	}
	return false
}

// reconnectLoop heals what memberlist does not: it stops gossiping to dead
// nodes after GossipToTheDeadTime, so two halves of a healed partition, or
// a node back after a long outage, would never find each other again. Every
// ReconnectInterval each node tries the members it remembers (this run's
// and, from the peer store, earlier runs') that it does not see in the
// ring, and its seeds. It also keeps the peer store current.
func (s *Server) reconnectLoop(ctx context.Context) {
	var saved []string
	if s.peers != nil {
		if addrs, err := s.peers.Load(); err == nil {
			saved = addrs
		} else {
			s.log.Warn("could not read the remembered peers", "err", err)
		}
	}
	// The join loop, if any, says why it waits.
	warn := clusterIDWait
	if len(s.cfg.Join) > 0 {
		warn = 0
	}
	if !s.awaitClusterID(ctx, warn) {
		return
	}
	tick := time.NewTicker(s.cfg.ReconnectInterval)
	defer tick.Stop()
	first, reconnect := true, true
	for {
		s.goneMu.Lock()
		known := map[string]bool{}
		for name, addr := range s.addrs {
			if name != s.cfg.Raft.NodeID {
				known[addr] = true
			}
		}
		var missing []string
		for name, addr := range s.addrs {
			if _, up := s.ring[name]; !up && name != s.cfg.Raft.NodeID {
				missing = append(missing, addr)
			}
		}
		alone := len(s.ring) <= 1
		s.goneMu.Unlock()

		current := sortedKeys(known)
		if s.peers != nil && len(current) > 0 && !slices.Equal(current, saved) {
			if err := s.peers.Save(current); err != nil {
				s.log.Warn("could not remember the peers", "err", err)
			} else {
				saved = current
			}
		}
		if first || alone {
			for _, a := range saved {
				if !known[a] {
					missing = append(missing, a)
				}
			}
		}
		if alone {
			missing = append(missing, s.cfg.Join...)
		}
		first = false
		if reconnect && len(missing) > 0 {
			sort.Strings(missing)
			missing = slices.Compact(missing)
			if n, err := s.ml.Join(missing); n > 0 {
				s.log.Debug("reconnected to members missing from the ring", "tried", missing, "answered", n)
			} else if err != nil {
				s.log.Debug("members missing from the ring did not answer", "tried", missing, "err", joinCauses(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			reconnect = true
		case <-s.peersWake:
			reconnect = false // only remember the new member
		}
	}
}
