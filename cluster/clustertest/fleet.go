package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/raftnode"
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
	net    *raftNet
	gossip *gossipNet
	Slots  []*Slot
}

// Slot is one place for a server in a Fleet. Its stores outlive the server,
// as a data dir does.
type Slot struct {
	*host
	f     *Fleet
	peers *cluster.MemoryPeers
}

// NewFleet prepares n slots named s0, s1, ... with the given server
// configuration template (TestServerConfig if zero), and stops every
// server when the test ends.
func NewFleet(t testing.TB, n int, cfg *cluster.ServerConfig) *Fleet {
	t.Helper()
	f := &Fleet{t: t, net: newRaftNet(), gossip: newGossipNet()}
	if cfg != nil {
		f.cfg = *cfg
	} else {
		f.cfg = cluster.TestServerConfig()
	}
	if testing.Verbose() && f.cfg.Raft.Logger == nil {
		f.cfg.Raft.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	for i := range n {
		f.Slots = append(f.Slots, &Slot{host: f.net.add(fmt.Sprintf("s%d", i)), f: f, peers: &cluster.MemoryPeers{}})
	}
	f.net.connect()
	t.Cleanup(f.Close)
	return f
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
	srv, err := cluster.StartServer(cfg, cluster.ServerDeps{
		Raft:            s.deps(fs),
		GossipTransport: f.gossip.transport(s.ID),
		Peers:           s.peers,
	})
	if err != nil {
		f.t.Fatalf("clustertest: start %s: %v", s.ID, err)
	}
	s.up(srv.Node(), srv, fs)
	return srv
}

// Server returns the slot's running server, or nil.
func (s *Slot) Server() *cluster.Server {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	return s.srv
}

// GossipAddr returns the address others join the slot's server at.
func (s *Slot) GossipAddr() string {
	s.f.gossip.mu.Lock()
	defer s.f.gossip.mu.Unlock()
	return s.f.gossip.addrOf[s.ID]
}

// Peers returns the slot's peer store: the gossip addresses its server
// remembers across restarts, as a data dir's peers file does.
func (s *Slot) Peers() *cluster.MemoryPeers { return s.peers }

// The keys the raft node keeps the cluster ID under: beside raft's
// state in the stable store, and in the state machine.
const (
	clusterIDStableKey = "graft-cluster-id"
	clusterIDKey       = raftnode.ClusterIDKey
)

// ForgetClusterID makes the slot's stores those of a data dir whose node
// was killed before it kept its cluster's ID beside raft's state (or of a
// graft that did not keep it): the ID is in the raft log only. The slot
// must be down.
func (s *Slot) ForgetClusterID() error { return s.store.Set([]byte(clusterIDStableKey), nil) }

// KeepClusterID makes the slot's stores keep id beside raft's state, as
// a data dir does whose graft kept an ID it read from an entry of its log
// never committed. The slot must be down.
func (s *Slot) KeepClusterID(id string) error {
	return s.store.Set([]byte(clusterIDStableKey), []byte(id))
}

// StoredClusterID returns the cluster ID kept beside the slot's raft
// state, "" if none.
func (s *Slot) StoredClusterID() string {
	b, err := s.store.Get([]byte(clusterIDStableKey))
	if err != nil {
		return ""
	}
	return string(b)
}

// EraseClusterID makes the slot's stores hold raft state that does not
// name its cluster: no ID kept beside it, and none in its log (the
// entries that wrote it lose those commands), as in the data dir of a
// node of a cluster whose first leader had not written its ID yet. The
// slot must be down, and hold no snapshot (which would hold the ID).
func (s *Slot) EraseClusterID() error {
	if snaps, err := s.snaps.List(); err != nil || len(snaps) > 0 {
		return fmt.Errorf("clustertest: %s holds %d snapshots (%v): its state machine's copy of the ID would stay", s.ID, len(snaps), err)
	}
	first, err := s.store.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.store.LastIndex()
	if err != nil {
		return err
	}
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := s.store.GetLog(i, &l); err != nil {
			return err
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		cmds, err := fsm.DecodeBatch(l.Data)
		if err != nil {
			return err
		}
		kept := slices.DeleteFunc(slices.Clone(cmds), writesClusterID)
		if len(kept) == len(cmds) {
			continue
		}
		l.Data = nil
		if len(kept) > 0 {
			if l.Data, err = fsm.EncodeBatch(kept); err != nil {
				return err
			}
		}
		if err := s.store.StoreLog(&l); err != nil {
			return err
		}
	}
	return s.ForgetClusterID()
}

// writesClusterID reports whether c writes the cluster ID.
func writesClusterID(c fsm.Command) bool {
	if c.Op == fsm.OpPut && c.Key == clusterIDKey {
		return true
	}
	return c.Op == fsm.OpTxn && slices.ContainsFunc(c.Then, writesClusterID)
}

// SetTerm makes the slot's stores hold raft's current term only, as those
// of a fresh node killed as a leader first reached it (raft keeps the
// leader's term before it takes any entry). The slot must be down.
func (s *Slot) SetTerm(term uint64) error { return s.store.SetUint64([]byte("CurrentTerm"), term) }

// Kill stops the slot's server the way a crash does: no leave.
func (f *Fleet) Kill(s *Slot) { s.down() }

// Restart starts a killed slot again on its stores.
func (f *Fleet) Restart(s *Slot, mod func(*cluster.ServerConfig)) *cluster.Server {
	if s.Server() != nil {
		f.t.Fatalf("clustertest: %s is running", s.ID)
	}
	s.renew()
	return f.Start(s, mod)
}

// Partition cuts the given slots off from the others, on every network.
func (f *Fleet) Partition(ss ...*Slot) {
	ids := []string{}
	f.gossip.mu.Lock()
	for _, s := range ss {
		ids = append(ids, s.ID)
		f.gossip.group[s.ID] = 1
	}
	f.gossip.mu.Unlock()
	f.net.partition(ids)
}

// CutLink cuts the link between two slots, on every network, leaving
// each of them linked to the others: with three slots, the third is a
// bridge between them.
func (f *Fleet) CutLink(a, b *Slot) {
	f.gossip.mu.Lock()
	f.gossip.links[[2]string{a.ID, b.ID}] = true
	f.gossip.mu.Unlock()
	f.net.cutLink(a.ID, b.ID)
}

// Freeze makes a slot behave as a stopped process (SIGSTOP) seen from the
// others, or one behind a firewall that drops packets: it is cut off, and
// RPCs sent to it are never answered (the caller waits until its context
// ends). Its own goroutines, in this process, still run. Heal thaws it.
func (f *Fleet) Freeze(s *Slot) {
	f.net.setMute(s.host, muteAll)
	f.Partition(s)
}

// Heal removes every partition and cut link, and thaws every slot.
func (f *Fleet) Heal() {
	f.gossip.mu.Lock()
	clear(f.gossip.group)
	clear(f.gossip.links)
	f.gossip.mu.Unlock()
	f.net.mu.Lock()
	clear(f.net.mute)
	f.net.mu.Unlock()
	f.net.cutLink("", "")
	f.net.partition(nil)
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
			if srv := s.Server(); srv != nil && f.net.group(s.host) == 0 {
				running++
				if id, _ := srv.Node().Leader(); id != "" {
					counts[id]++
				}
			}
		}
		for _, s := range f.Slots {
			if srv := s.Server(); srv != nil && f.net.group(s.host) == 0 && srv.Node().IsLeader() && counts[s.ID] > running/2 {
				return s, true
			}
		}
		return nil, false
	})
}
