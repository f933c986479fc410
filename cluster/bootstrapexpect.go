package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
)

// expectView is what the bootstrap-expect decision reads: this node's
// settings and the ring as it sees it.
type expectView struct {
	self        string
	clusterName string
	expect      int             // BootstrapExpect
	ring        map[string]Meta // the ring's members, this node included
	tooMany     bool            // more servers than expected were seen before
}

// expectStep is what the bootstrap-expect loop does next.
type expectStep int

const (
	expectWait      expectStep = iota // look again at the next tick or ring change
	expectExisting                    // the ring holds a bootstrapped cluster: stop, and wait to be added
	expectTooMany                     // more servers than expected: never bootstrap
	expectBootstrap                   // the expected servers agree: bootstrap them
)

// expectDecision is the bootstrap-expect decision.
type expectDecision struct {
	step expectStep
	// servers are the fresh servers expecting as many as this node, sorted
	// by ID, and set their hash, once exactly that many are seen (and never
	// after more were): the set this node gossips it would bootstrap.
	servers []raftnode.RaftServer
	set     string
	seen    int    // the fresh servers seen
	member  string // expectExisting: a member of the bootstrapped cluster
}

// decideExpect decides the bootstrap-expect loop's next step. It
// bootstraps once exactly BootstrapExpect fresh servers of this cluster
// (this one included), all expecting that many, see each other, every one
// of them names the same set, and none of the ring belongs to a cluster
// already. Each node gossips a hash of the set it sees and bootstraps only
// when all of the set gossip the same hash, so nodes that see different
// sets (more servers than expected, or one that came and went) never
// bootstrap two clusters. Once more servers than expected have been seen
// it never bootstraps.
func decideExpect(v expectView) expectDecision {
	var fresh []raftnode.RaftServer
	sets := map[string]string{}
	existing := ""
	for _, name := range sortedKeys(v.ring) {
		meta := v.ring[name]
		if meta.Cluster != v.clusterName {
			continue
		}
		if meta.ClusterID != "" {
			existing = name
			continue
		}
		if meta.Expect == v.expect {
			fresh = append(fresh, raftnode.RaftServer{ID: name, Address: meta.RaftAddr})
			sets[name] = meta.ExpectSet
		}
	}
	d := expectDecision{seen: len(fresh)}
	switch {
	case existing != "":
		d.step, d.member = expectExisting, existing
	case len(fresh) > v.expect && !v.tooMany:
		d.step = expectTooMany
	case len(fresh) == v.expect && !v.tooMany:
		slices.SortFunc(fresh, func(a, b raftnode.RaftServer) int { return strings.Compare(a.ID, b.ID) })
		d.servers, d.set = fresh, setHash(fresh)
		d.step = expectBootstrap
		for _, srv := range fresh {
			if srv.ID != v.self && sets[srv.ID] != d.set {
				d.step = expectWait
			}
		}
	}
	return d
}

// bootstrapExpectLoop bootstraps this fresh node with the servers it
// expects, as decideExpect decides, looking again on every tick and ring
// change until it bootstraps, or the node has raft state, knows a cluster
// or sees one.
func (s *Server) bootstrapExpectLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	tooMany := false
	for {
		if s.node.HasState() || s.ClusterID() != "" || s.node.LastIndex() > 0 {
			return
		}
		ring := map[string]Meta{}
		for name, e := range s.ringView() {
			ring[name] = e.meta
		}
		d := decideExpect(expectView{self: s.cfg.Raft.NodeID, clusterName: s.cfg.ClusterName,
			expect: s.cfg.BootstrapExpect, ring: ring, tooMany: tooMany})
		switch d.step {
		case expectExisting:
			s.log.Info("the ring holds a bootstrapped cluster; waiting to be added to it", "seen", d.member)
			return
		case expectTooMany:
			tooMany = true
			s.log.Error("more servers than --bootstrap-expect see each other: not bootstrapping; make the count agree and start them afresh",
				"expect", s.cfg.BootstrapExpect, "seen", d.seen)
		}
		if d.set != "" {
			s.gossipExpectSet(d.set)
		}
		if d.step == expectBootstrap {
			s.log.Info("the expected servers see each other and agree: bootstrapping", "servers", d.servers)
			if err := s.node.Bootstrap(d.servers); err != nil {
				s.log.Error("bootstrap failed", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.expectWake:
		}
	}
}

// gossipExpectSet gossips set as the set this node would bootstrap, unless
// it already does.
func (s *Server) gossipExpectSet(set string) {
	if p := s.expectSet.Load(); p != nil && *p == set {
		return
	}
	s.expectSet.Store(&set)
	if err := s.updateMeta(); err != nil {
		s.log.Warn("could not gossip the bootstrap set", "err", err)
	}
}

// setHash names a set of servers.
func setHash(servers []raftnode.RaftServer) string {
	h := sha256.New()
	for _, s := range servers {
		h.Write([]byte(s.ID + "\x00" + s.Address + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
