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
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// Member is one node of a test cluster. Its stores outlive the node, so a
// killed member restarts with its state, as from its data dir.
type Member struct {
	*host
	c *Cluster
}

// Cluster is a set of in-process nodes.
type Cluster struct {
	t       testing.TB
	cfg     raftnode.Config
	net     *raftNet
	history int
	Members []*Member
}

// Option changes a test cluster's settings.
type Option func(*Cluster)

// WithHistory sets how many events each FSM keeps for watchers.
func WithHistory(n int) Option { return func(c *Cluster) { c.history = n } }

// WithLogger sends every node's logs, raft's included, to l.
func WithLogger(l *slog.Logger) Option { return func(c *Cluster) { c.cfg.Logger = l } }

// New starts n nodes, all voters of one bootstrapped cluster, and closes
// them when the test ends.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, cfg: raftnode.TestConfig(), net: newRaftNet()}
	for _, o := range opts {
		o(c)
	}
	if testing.Verbose() && c.cfg.Logger == nil {
		c.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var servers []raftnode.RaftServer
	for i := range n {
		m := &Member{host: c.net.add(fmt.Sprintf("node%d", i)), c: c}
		c.Members = append(c.Members, m)
		servers = append(servers, raftnode.RaftServer{ID: m.ID, Address: string(m.addr)})
	}
	c.net.connect()
	for _, m := range c.Members {
		m.start()
	}
	if err := c.Members[0].Node().Bootstrap(servers); err != nil {
		t.Fatalf("clustertest: bootstrap: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (m *Member) start() {
	c := m.c
	cfg := c.cfg
	cfg.NodeID = m.ID
	cfg.Bootstrap = false // New bootstraps all members at once, as voters
	f := fsm.New(fsm.Options{History: c.history, Logger: cfg.Logger})
	node, err := raftnode.New(cfg, *m.deps(f))
	if err != nil {
		c.t.Fatalf("clustertest: start %s: %v", m.ID, err)
	}
	m.up(node, nil, f)
}

// Partition cuts the given members off from the others (they can still
// reach each other).
func (c *Cluster) Partition(ms ...*Member) {
	ids := []string{}
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	c.net.partition(ids)
}

// Heal removes every partition and thaws every member.
func (c *Cluster) Heal() {
	c.net.mu.Lock()
	clear(c.net.mute)
	c.net.mu.Unlock()
	c.net.partition(nil)
}

// Freeze makes a member behave as a stopped process (SIGSTOP) or one cut
// off by a firewall that drops packets: it is partitioned away, and RPCs
// sent to it are never answered (the caller waits until its context
// ends). Heal thaws it.
func (c *Cluster) Freeze(m *Member) {
	c.net.setMute(m.host, muteAll)
	c.Partition(m)
}

// LoseAnswers makes a member do what RPCs ask but lose its answers, as
// when its connection breaks after a request arrived. Heal ends it.
func (c *Cluster) LoseAnswers(m *Member) { c.net.setMute(m.host, muteAnswers) }

// RefuseRPCs makes a member refuse graft's RPC connections (as a cluster
// port refuses a flood from one address) while raft goes on. Heal ends
// it.
func (c *Cluster) RefuseRPCs(m *Member) { c.net.setMute(m.host, muteRefuse) }

// Kill stops a member's node, keeping its stores.
func (c *Cluster) Kill(m *Member) { m.down() }

// Restart starts a killed member again on its stores.
func (c *Cluster) Restart(m *Member) {
	if m.Node() != nil {
		c.t.Fatalf("clustertest: %s is running", m.ID)
	}
	m.renew()
	m.start()
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
			if n := m.Node(); n != nil && c.net.group(m.host) == 0 {
				if id, _ := n.Leader(); id != "" {
					counts[id]++
				}
			}
		}
		for _, m := range c.Members {
			if n := m.Node(); n != nil && n.IsLeader() && c.net.group(m.host) == 0 && counts[m.ID] > len(c.Members)/2 {
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
