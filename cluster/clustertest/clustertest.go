// Package clustertest runs clusters of in-process graft nodes on raft's
// in-memory transport, with partitions, kills and restarts, for tests.
//
// It works inside a testing/synctest bubble, where raft's timers run on the
// bubble's fake clock: elections and snapshots take no real time, and a
// goroutine left behind fails the test.
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

// Member is one node of a test cluster. Its stores outlive the node, so a
// killed member restarts with its state, as from its data dir.
type Member struct {
	ID   string
	Addr raft.ServerAddress

	c     *Cluster
	node  *cluster.Node
	fsm   *fsm.FSM
	trans *raft.InmemTransport
	store *raft.InmemStore
	snaps *raft.InmemSnapshotStore
}

// Node returns the running node, or nil if the member is down.
func (m *Member) Node() *cluster.Node {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return m.node
}

// FSM returns the member's state machine (the current one if restarted).
func (m *Member) FSM() *fsm.FSM {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return m.fsm
}

// Cluster is a set of in-process nodes.
type Cluster struct {
	t       testing.TB
	cfg     cluster.Config
	Members []*Member

	mu      sync.Mutex
	cut     map[raft.ServerAddress]int // partition group of each member; 0 = the main one
	history int
}

// Option changes a test cluster's settings.
type Option func(*Cluster)

// WithHistory sets how many events each FSM keeps for watchers.
func WithHistory(n int) Option { return func(c *Cluster) { c.history = n } }

// New starts n nodes, all voters of one bootstrapped cluster, and closes
// them when the test ends.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, cfg: cluster.TestConfig(), cut: map[raft.ServerAddress]int{}}
	for _, o := range opts {
		o(c)
	}
	if testing.Verbose() && c.cfg.Logger == nil {
		c.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var servers []raft.Server
	for i := range n {
		id := fmt.Sprintf("node%d", i)
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		m := &Member{ID: id, Addr: addr, c: c, trans: trans,
			store: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
		c.Members = append(c.Members, m)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: addr})
	}
	c.connectAll()
	for _, m := range c.Members {
		m.start(false)
	}
	if err := c.Members[0].node.Raft().BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("clustertest: bootstrap: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (m *Member) start(bootstrap bool) {
	c := m.c
	cfg := c.cfg
	cfg.NodeID = m.ID
	cfg.Bootstrap = bootstrap
	f := fsm.New(fsm.Options{History: c.history, Logger: cfg.Logger})
	node, err := cluster.New(cfg, cluster.Deps{
		FSM: f, Transport: m.trans, LogStore: m.store, StableStore: m.store,
		SnapshotStore: m.snaps, RPC: &rpcView{c: c, from: m.Addr},
	})
	if err != nil {
		c.t.Fatalf("clustertest: start %s: %v", m.ID, err)
	}
	c.mu.Lock()
	m.node, m.fsm = node, f
	c.mu.Unlock()
}

// connectAll wires every transport to every other one in the same
// partition group.
func (c *Cluster) connectAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.Members {
		a.trans.DisconnectAll()
		for _, b := range c.Members {
			if a != b && c.cut[a.Addr] == c.cut[b.Addr] {
				a.trans.Connect(b.Addr, b.trans)
			}
		}
	}
}

// Partition cuts the given members off from the others (they can still
// reach each other).
func (c *Cluster) Partition(ms ...*Member) {
	c.mu.Lock()
	for _, m := range ms {
		c.cut[m.Addr] = 1
	}
	c.mu.Unlock()
	c.connectAll()
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.mu.Lock()
	clear(c.cut)
	c.mu.Unlock()
	c.connectAll()
}

// Kill stops a member's node, keeping its stores.
func (c *Cluster) Kill(m *Member) {
	c.mu.Lock()
	node := m.node
	m.node = nil
	c.mu.Unlock()
	if node != nil {
		_ = node.Close()
		_ = m.trans.Close() // peers' messages to it now fail, as to a dead host
	}
}

// Restart starts a killed member again on its stores.
func (c *Cluster) Restart(m *Member) {
	if m.Node() != nil {
		c.t.Fatalf("clustertest: %s is running", m.ID)
	}
	addr, trans := raft.NewInmemTransport(m.Addr)
	c.mu.Lock()
	m.Addr, m.trans = addr, trans
	c.mu.Unlock()
	c.connectAll()
	m.start(false)
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		c.Kill(m)
	}
}

// Leader waits for a leader that a majority of the members agree on, on
// the majority's side of any partition, and returns it.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	return poll(ctx, "no leader", func() (*Member, bool) {
		counts := map[string]int{}
		for _, m := range c.Members {
			if n := m.Node(); n != nil && c.group(m) == 0 {
				if id, _ := n.Leader(); id != "" {
					counts[id]++
				}
			}
		}
		for _, m := range c.Members {
			if n := m.Node(); n != nil && n.IsLeader() && c.group(m) == 0 && counts[m.ID] > len(c.Members)/2 {
				return m, true
			}
		}
		return nil, false
	})
}

// poll calls find every 5ms until it finds something or ctx ends.
func poll[T any](ctx context.Context, what string, find func() (T, bool)) (T, error) {
	for {
		if v, ok := find(); ok {
			return v, nil
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("clustertest: %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// group is m's partition group; 0 is the main one.
func (c *Cluster) group(m *Member) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut[m.Addr]
}

// Followers returns the running members other than leader.
func (c *Cluster) Followers(leader *Member) []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m != leader && m.Node() != nil {
			out = append(out, m)
		}
	}
	return out
}

// rpcView is one member's view of the in-memory RPC network.
type rpcView struct {
	c    *Cluster
	from raft.ServerAddress
}

func (v *rpcView) Call(ctx context.Context, addr string, req *cluster.Request) (*cluster.Response, error) {
	c := v.c
	c.mu.Lock()
	var target *cluster.Node
	for _, m := range c.Members {
		if string(m.Addr) == addr {
			target = m.node
		}
	}
	reachable := c.cut[v.from] == c.cut[raft.ServerAddress(addr)]
	c.mu.Unlock()
	if target == nil || !reachable {
		return nil, cluster.Unreachable(fmt.Errorf("clustertest: %s unreachable from %s", addr, v.from))
	}
	return target.HandleRPC(ctx, req), nil
}
