package cluster_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/fsm"
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
	tok, err := cluster.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	start := func(id string, join []string) *cluster.Server {
		cfg := cluster.TestServerConfig()
		cfg.Raft.NodeID, cfg.Raft.DataDir = id, t.TempDir()
		cfg.Token, cfg.Join = &tok, join
		s, err := cluster.StartServer(cfg, fsm.New(fsm.Options{}), cluster.ServerDeps{})
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
	waitFor(t, 30*time.Second, "three voters", func() bool {
		st := a.Node().Status()
		voters := 0
		for _, s := range st.Servers {
			if s.Suffrage == "voter" {
				voters++
			}
		}
		return voters == 3
	})
	for i, s := range []*cluster.Server{b, c} {
		if _, err := s.Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: fmt.Sprint("k", i), Value: []byte("v")}}); err != nil {
			t.Fatalf("write through %s: %v", s.Node().ID(), err)
		}
	}
	if err := c.Node().Linearize(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Node().FSM().Get("k0"); !ok {
		t.Error("c lacks b's write")
	}
	var names []string
	for _, m := range a.Members() {
		names = append(names, m.Name+":"+m.Role)
	}
	if !slices.Contains(names, "a:leader") || len(names) != 3 {
		t.Errorf("members %v", names)
	}
}
