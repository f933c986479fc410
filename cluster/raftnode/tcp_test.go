package raftnode_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// openNode starts a node with the production stack on loopback.
func openNode(t *testing.T, id, dir string, bootstrap bool) *raftnode.Node {
	t.Helper()
	cfg := raftnode.TestConfig()
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = id, dir, bootstrap
	// Real sockets under -race on a loaded machine: TestConfig's 100 ms
	// heartbeat and 50 ms lease let a leader lose its lease between two
	// heartbeats (a forwarded write then failed with "leadership lost while
	// committing log"). Production's timeouts keep these tests about what
	// they test; a sole voter still elects itself at once.
	def := raftnode.DefaultConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout
	n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// openThree opens node a on dirA, bootstrapped, and b and c on dirB and
// dirC, added to a's cluster as voters. a and b close when the test ends;
// closing c is the caller's.
func openThree(t *testing.T, dirA, dirB, dirC string) (a, b, c *raftnode.Node) {
	t.Helper()
	a = openNode(t, "a", dirA, true)
	t.Cleanup(func() { a.Close() })
	waitLeader(t, a)
	b = openNode(t, "b", dirB, false)
	t.Cleanup(func() { b.Close() })
	c = openNode(t, "c", dirC, false)
	for _, n := range []*raftnode.Node{b, c} {
		if err := a.AddVoter(n.ID(), n.Addr(), 10*time.Second); err != nil {
			c.Close()
			t.Fatal(err)
		}
	}
	return a, b, c
}

func waitLeader(t *testing.T, nodes ...*raftnode.Node) *raftnode.Node {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.IsLeader() {
				return n
			}
		}
		<-time.After(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil
}

// A node on disk keeps its state across a restart, even on a new port.
func TestOpenRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, "solo", dir, true)
	waitLeader(t, n)
	for i := range 50 {
		if _, err := n.Apply(t.Context(), put(fmt.Sprintf("k%d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, "solo", dir, true) // has state: must not bootstrap again
	defer n.Close()
	waitLeader(t, n)
	if err := n.Linearize(t.Context()); err != nil {
		t.Fatal(err)
	}
	if kvs, _ := n.FSM().List("k", 0); len(kvs) != 50 {
		t.Errorf("%d keys after restart, want 50", len(kvs))
	}
	if _, err := n.Apply(t.Context(), put("after", "restart")); err != nil {
		t.Errorf("write after restart: %v", err)
	}
}

// Three nodes over real TCP: a write on a follower is forwarded to the
// leader through the cluster port's RPC and reaches every node.
func TestTCPClusterForwardsWrites(t *testing.T) {
	a, b, c := openThree(t, t.TempDir(), t.TempDir(), t.TempDir())
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i, n := range []*raftnode.Node{b, c, a} {
		if _, err := n.Apply(ctx, put(fmt.Sprintf("from-%s", n.ID()), fmt.Sprint(i))); err != nil {
			t.Fatalf("write on %s: %v", n.ID(), err)
		}
	}
	for _, n := range []*raftnode.Node{a, b, c} {
		if err := n.Linearize(ctx); err != nil {
			t.Fatalf("%s: Linearize: %v", n.ID(), err)
		}
		for _, k := range []string{"from-a", "from-b", "from-c"} {
			if _, ok := n.FSM().Get(k); !ok {
				t.Errorf("%s lacks %s", n.ID(), k)
			}
		}
		if st := n.Status(); len(st.Servers) != 3 {
			t.Errorf("%s status: %+v", n.ID(), st)
		}
	}
	// On a loaded machine leadership may move during the test (short
	// test timeouts): what matters is that all three agree on one.
	eventually(t, 20*time.Second, "one leader all three report", func() bool {
		l := a.Status().Leader
		return l != "" && b.Status().Leader == l && c.Status().Leader == l
	})
}

// Every timing raft would refuse once the node starts (after its ports
// are bound) is refused by Validate first, with the field named.
func TestConfigValidateRefusesWhatRaftRefuses(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*raftnode.Config)
	}{
		{"ElectionTimeout", func(c *raftnode.Config) { c.ElectionTimeout = c.HeartbeatTimeout / 2 }},
		{"HeartbeatTimeout", func(c *raftnode.Config) {
			c.HeartbeatTimeout, c.LeaderLeaseTimeout = 2*time.Millisecond, time.Millisecond
		}},
		{"CommitTimeout", func(c *raftnode.Config) { c.CommitTimeout = 500 * time.Microsecond }},
		{"LeaderLeaseTimeout", func(c *raftnode.Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }},
		{"SnapshotInterval", func(c *raftnode.Config) { c.SnapshotInterval = time.Millisecond }},
	} {
		cfg := raftnode.TestConfig()
		cfg.NodeID = "a"
		tc.set(&cfg)
		rc := raft.DefaultConfig()
		rc.LocalID = "a"
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout
		rc.CommitTimeout, rc.SnapshotInterval = cfg.CommitTimeout, cfg.SnapshotInterval
		if raft.ValidateConfig(rc) == nil {
			t.Errorf("%s: raft accepts the config; the case tests nothing", tc.field)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate says %v, want an error naming it", tc.field, err)
		}
	}
	for name, cfg := range map[string]raftnode.Config{"DefaultConfig": raftnode.DefaultConfig(), "TestConfig": raftnode.TestConfig()} {
		cfg.NodeID = "a"
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s is refused: %v", name, err)
		}
	}
}

// Bad configurations are refused with the field named.
func TestConfigValidate(t *testing.T) {
	cfg := raftnode.DefaultConfig()
	if err := cfg.Validate(); err == nil {
		t.Error("empty NodeID accepted")
	}
	cfg.NodeID = "a/b"
	cfg.ElectionTimeout = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"NodeID", "ElectionTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
