// Package apitest holds fakes of the agent's parts for tests of the API and
// of the commands that call it.
package apitest

import (
	"sync"

	"github.com/graftcm/graft/cluster"
)

// FakeCluster is an api.Cluster that records joins and answers with set
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
