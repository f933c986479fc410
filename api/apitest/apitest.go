// Package apitest holds fakes of the agent's parts for tests of the API and
// of the commands that call it.
package apitest

import (
	"sync"
	"time"

	"github.com/graftcm/graft/cluster"
)

// FakeCluster is a server.Cluster (package api/server) that records joins and answers with set
// values.
type FakeCluster struct {
	JoinErr error                // what Join returns, if set
	Nodes   []cluster.MemberInfo // what Members returns

	mu     sync.Mutex
	joined [][]string
}

// Join records addrs and answers that all of them answered, or JoinErr.
func (c *FakeCluster) Join(addrs []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.joined = append(c.joined, addrs)
	if c.JoinErr != nil {
		return 0, c.JoinErr
	}
	return len(addrs), nil
}

// Joined returns the address lists Join was called with, in order.
func (c *FakeCluster) Joined() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

// Members, ClusterID and GossipAddr answer with fixed values.
func (c *FakeCluster) Members() []cluster.MemberInfo { return c.Nodes }
func (c *FakeCluster) ClusterID() string             { return "c1d" }
func (c *FakeCluster) GossipAddr() string            { return "10.0.0.1:7946" }

// FakeNode is a server.Node with set answers: caught up, never in touch with
// a leader and knowing none, until told otherwise.
type FakeNode struct {
	mu      sync.Mutex
	behind  bool
	contact time.Time
	leader  string
}

// SetCaughtUp sets what CaughtUp answers.
func (n *FakeNode) SetCaughtUp(ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.behind = !ok
}

// SetLeader sets what LeaderContact and Leader answer: the last contact
// with a leader, and the leader's ID (empty: none known).
func (n *FakeNode) SetLeader(contact time.Time, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.contact, n.leader = contact, id
}

// CaughtUp, LeaderContact and Leader answer what was set.
func (n *FakeNode) CaughtUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.behind
}

func (n *FakeNode) LeaderContact() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.contact
}

func (n *FakeNode) Leader() (id, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leader == "" {
		return "", ""
	}
	return n.leader, n.leader + ":7947"
}
