package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/fsm"
)

// Fleet is a set of cluster.Servers (raft nodes that manage their own
// membership through gossip) on in-memory networks for raft, RPC and
// gossip, with partitions, crashes and restarts. Slots are prepared up
// front and started one by one, so tests can grow a cluster the way people
// do: start one, then join others to it.
type Fleet struct {
	t      testing.TB
	cfg    cluster.ServerConfig
	gossip *gossipNet
	Slots  []*Slot

	mu  sync.Mutex
	cut map[string]int // partition group by slot ID
}

// Slot is one place for a server in a Fleet. Its stores outlive the server,
// as a data dir does.
type Slot struct {
	ID string
	f  *Fleet

	srv   *cluster.Server
	fsm   *fsm.FSM
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	store *raft.InmemStore
	snaps *raft.InmemSnapshotStore
	peers *cluster.MemoryPeers
}

// NewFleet prepares n slots named s0, s1, ... with the given server
// configuration template (TestServerConfig if zero), and stops every
// server when the test ends.
func NewFleet(t testing.TB, n int, cfg *cluster.ServerConfig) *Fleet {
	t.Helper()
	f := &Fleet{t: t, gossip: newGossipNet(), cut: map[string]int{}}
	if cfg != nil {
		f.cfg = *cfg
	} else {
		f.cfg = cluster.TestServerConfig()
	}
	if testing.Verbose() && f.cfg.Raft.Logger == nil {
		f.cfg.Raft.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		f.Slots = append(f.Slots, &Slot{ID: id, f: f, addr: addr, trans: trans,
			store: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore(), peers: &cluster.MemoryPeers{}})
	}
	f.connect()
	t.Cleanup(f.Close)
	return f
}

// connect wires raft transports within partition groups.
func (f *Fleet) connect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.Slots {
		a.trans.DisconnectAll()
		for _, b := range f.Slots {
			if a != b && f.cut[a.ID] == f.cut[b.ID] {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// Start starts the slot's server; mod may adjust its configuration (Join,
// BootstrapExpect...).
func (f *Fleet) Start(s *Slot, mod func(*cluster.ServerConfig)) *cluster.Server {
	f.t.Helper()
	cfg := f.cfg
	cfg.Raft.NodeID = s.ID
	cfg.Join = nil
	if mod != nil {
		mod(&cfg)
	}
	fs := fsm.New(fsm.Options{Logger: cfg.Raft.Logger})
	srv, err := cluster.StartServer(cfg, fs, cluster.ServerDeps{
		Raft: &cluster.Deps{FSM: fs, Transport: s.trans, LogStore: s.store, StableStore: s.store,
			SnapshotStore: s.snaps, RPC: &fleetRPC{f: f, from: s}},
		GossipTransport: f.gossip.transport(s.ID),
		Peers:           s.peers,
	})
	if err != nil {
		f.t.Fatalf("clustertest: start %s: %v", s.ID, err)
	}
	f.mu.Lock()
	s.srv, s.fsm = srv, fs
	f.mu.Unlock()
	return srv
}

// Server returns the slot's running server, or nil.
func (s *Slot) Server() *cluster.Server {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.srv
}

// FSM returns the slot's current state machine.
func (s *Slot) FSM() *fsm.FSM {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.fsm
}

// GossipAddr returns the address others join the slot's server at.
func (s *Slot) GossipAddr() string {
	s.f.gossip.mu.Lock()
	defer s.f.gossip.mu.Unlock()
	return s.f.gossip.addrOf[s.ID]
}

// Kill stops the slot's server the way a crash does: no leave.
func (f *Fleet) Kill(s *Slot) {
	f.mu.Lock()
	srv := s.srv
	s.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		_ = s.trans.Close()
	}
}

// Restart starts a killed slot again on its stores.
func (f *Fleet) Restart(s *Slot, mod func(*cluster.ServerConfig)) *cluster.Server {
	if s.Server() != nil {
		f.t.Fatalf("clustertest: %s is running", s.ID)
	}
	addr, trans := raft.NewInmemTransport(s.addr)
	f.mu.Lock()
	s.addr, s.trans = addr, trans
	f.mu.Unlock()
	f.connect()
	return f.Start(s, mod)
}

// Partition cuts the given slots off from the others, on every network.
func (f *Fleet) Partition(ss ...*Slot) {
	f.mu.Lock()
	f.gossip.mu.Lock()
	for _, s := range ss {
		f.cut[s.ID] = 1
		f.gossip.group[s.ID] = 1
	}
	f.gossip.mu.Unlock()
	f.mu.Unlock()
	f.connect()
}

// Heal removes every partition.
func (f *Fleet) Heal() {
	f.mu.Lock()
	f.gossip.mu.Lock()
	clear(f.cut)
	clear(f.gossip.group)
	f.gossip.mu.Unlock()
	f.mu.Unlock()
	f.connect()
}

// Close stops every server, then lets time pass for memberlist's probes in
// flight at shutdown to time out: memberlist does not stop them itself, and
// inside a synctest bubble time stops once the test function returns, so
// they would be left blocked. Fleets are for synctest bubbles, where this
// wait takes no real time.
func (f *Fleet) Close() {
	for _, s := range f.Slots {
		f.Kill(s)
	}
	<-time.After(4*f.cfg.Gossip.ProbeInterval + f.cfg.Gossip.TCPTimeout)
}

// Leader waits for a running slot that leads and that a majority of the
// running slots of the main partition agree on.
func (f *Fleet) Leader(ctx context.Context) (*Slot, error) {
	return poll(ctx, "no leader", func() (*Slot, bool) {
		counts := map[string]int{}
		running := 0
		for _, s := range f.Slots {
			if srv := s.Server(); srv != nil && f.group(s) == 0 {
				running++
				if id, _ := srv.Node().Leader(); id != "" {
					counts[id]++
				}
			}
		}
		for _, s := range f.Slots {
			if srv := s.Server(); srv != nil && f.group(s) == 0 && srv.Node().IsLeader() && counts[s.ID] > running/2 {
				return s, true
			}
		}
		return nil, false
	})
}

func (f *Fleet) group(s *Slot) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[s.ID]
}

// fleetRPC is one slot's view of the in-memory RPC network.
type fleetRPC struct {
	f    *Fleet
	from *Slot
}

func (r *fleetRPC) Call(ctx context.Context, addr string, req *cluster.Request) (*cluster.Response, error) {
	f := r.f
	f.mu.Lock()
	var target *cluster.Server
	var to *Slot
	for _, s := range f.Slots {
		if string(s.addr) == addr {
			target, to = s.srv, s
		}
	}
	reachable := to != nil && f.cut[r.from.ID] == f.cut[to.ID]
	f.mu.Unlock()
	if target == nil || !reachable {
		return nil, cluster.Unreachable(fmt.Errorf("clustertest: %s unreachable from %s", addr, r.from.ID))
	}
	return target.Node().HandleRPC(ctx, req), nil
}
