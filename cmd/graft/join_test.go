package main

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
)

// fakeCluster is an api.Cluster that records joins.
type fakeCluster struct {
	mu      sync.Mutex
	joined  [][]string
	joinErr error
	members []cluster.MemberInfo
}

func (c *fakeCluster) Join(addrs []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.joined = append(c.joined, addrs)
	if c.joinErr != nil {
		return 0, c.joinErr
	}
	return len(addrs), nil
}

func (c *fakeCluster) Members() []cluster.MemberInfo { return c.members }
func (c *fakeCluster) ClusterID() string             { return "c1d" }
func (c *fakeCluster) GossipAddr() string            { return "10.0.0.1:7946" }

func TestJoinCommand(t *testing.T) {
	fc := &fakeCluster{}
	sock, _, _ := testAPIWith(t, func(c *api.Config) { c.Cluster = fc })
	code, stdout, stderr := graft(t, "join", "--api", sock, "10.0.0.2:7946", "10.0.0.3:7946")
	if code != 0 || stdout != "joined the cluster: 2 node(s) answered\n" {
		t.Errorf("join: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if want := [][]string{{"10.0.0.2:7946", "10.0.0.3:7946"}}; !reflect.DeepEqual(fc.joined, want) {
		t.Errorf("the agent was asked to join %q, want %q", fc.joined, want)
	}

	if code, _, stderr := graft(t, "join", "--api", sock); code != 2 || !strings.Contains(stderr, "gossip address") {
		t.Errorf("join without addresses: exit %d, stderr %q", code, stderr)
	}

	fc.joinErr = errors.New("failed to join 10.0.0.9:7946: no installed keys could decrypt the message")
	code, _, stderr = graft(t, "join", "--api", sock, "10.0.0.9:7946")
	if code != 1 || !strings.Contains(stderr, "could decrypt") || !strings.Contains(stderr, "cluster's key") {
		t.Errorf("a failed join: exit %d, stderr %q", code, stderr)
	}
}
