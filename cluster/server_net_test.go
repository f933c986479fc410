package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// waitFor polls cond in real time (the network is real here).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// Three servers on the production stack over loopback: real UDP/TCP
// gossip encrypted with the key, and raft and RPC over mutual TLS derived
// from it. They grow into one cluster of three voters and forward writes.
func TestServersOverLoopback(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	start := func(id string, join []string) *cluster.Server {
		cfg := cluster.TestServerConfig()
		cfg.Raft.NodeID, cfg.Raft.DataDir = id, t.TempDir()
		cfg.Token, cfg.Join = &tok, join
		s, err := cluster.StartServer(cfg, cluster.ServerDeps{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := start("a", nil)
	waitFor(t, 20*time.Second, "a leads", a.Node().IsLeader)
	b := start("b", []string{a.GossipAddr()})
	c := start("c", []string{a.GossipAddr()})
	// Promoting a non-voter takes progress calls answered within 100 ms for
	// 300 ms on end: under load that can take a minute.
	waitFor(t, 2*time.Minute, "three voters", func() bool {
		st := a.Node().Status()
		voters := 0
		for _, s := range st.Servers {
			if s.Suffrage == "voter" {
				voters++
			}
		}
		return voters == 3
	})
	// Under load the 100 ms elections can follow one another for seconds:
	// writes and reads get slow(t)'s minute, not the 5 s forwarding default,
	// and a write whose leader lost its leadership is made again.
	for i, s := range []*cluster.Server{b, c} {
		if err := put(slow(t), s.Node(), fmt.Sprint("k", i), []byte("v")); err != nil {
			t.Fatalf("write through %s: %v", s.Node().ID(), err)
		}
	}
	if err := c.Node().Linearize(slow(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Node().FSM().Get("k0"); !ok {
		t.Error("c lacks b's write")
	}
	// Under load the short test timeouts can move the leadership, so any
	// one of them may lead, and for a moment none: wait for the members to
	// show three servers in raft, exactly one of them leading.
	waitFor(t, 20*time.Second, "members with one leader and two voters", func() bool {
		members := a.Members()
		roles := map[string]int{}
		for _, m := range members {
			roles[m.Role]++
		}
		return len(members) == 3 && roles["leader"] == 1 && roles["voter"] == 2
	})
}
