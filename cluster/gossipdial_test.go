package cluster_test

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/clustertest"
)

// blackhole is a TCP listener that takes connections and never answers
// on them: a join to it waits for memberlist's TCPTimeout.
type blackhole struct {
	ln       net.Listener
	accepted atomic.Int32
}

func newBlackhole(t *testing.T) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			b.accepted.Add(1)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	return b
}

func (b *blackhole) addr() string { return b.ln.Addr().String() }

// Issue 13 (review): a server that stopped waited for the joins under way
// (its join loop's, and those its owner made, as discovery does), each up
// to memberlist's TCPTimeout, 10 s on a LAN, when the address never
// answered. The streams a server opened end when it stops.
func TestAServerStopsPromptlyWhileJoiningAnAddressThatNeverAnswers(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	hole := newBlackhole(t)
	cfg := cluster.TestServerConfig()
	cfg.Gossip = cluster.LANGossip() // TCPTimeout: 10 s
	cfg.Raft.NodeID, cfg.Raft.DataDir = "a", t.TempDir()
	cfg.Token, cfg.Join = &tok, []string{hole.addr()}
	s, err := cluster.StartServer(cfg, cluster.ServerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	joined := make(chan error, 1)
	go func() { _, err := s.Join([]string{hole.addr()}); joined <- err }()
	waitFor(t, 20*time.Second, "the join loop's and the caller's joins to reach the blackhole", func() bool {
		return hole.accepted.Load() >= 2
	})
	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("the server took %v to stop while joining an address that never answers; want well under its TCPTimeout, %v",
			took, cfg.Gossip.TCPTimeout)
	}
	select {
	case err := <-joined:
		if err == nil {
			t.Error("a join to an address that never answered succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("a join under way did not return within 5s of the server's stop")
	}
}

// The moved-node announcer joins the members this node saw, but not
// those it knows dead: each would hold the join up to TCPTimeout.
func TestTheMovedNodeAnnouncerSkipsMembersKnownDead(t *testing.T) {
	f := clustertest.NewFleet(t, 3, nil)
	s0 := f.Start(f.Slots[0], nil)
	for _, sl := range f.Slots[1:] {
		f.Start(sl, func(c *cluster.ServerConfig) { c.Join = []string{f.Slots[0].GossipAddr()} })
	}
	live, dead := f.Slots[1].GossipAddr(), f.Slots[2].GossipAddr()
	eventually(t, time.Minute, "s0 sees both others", func() bool {
		return slices.Equal(s0.KnownPeerAddrs(), sorted(live, dead))
	})
	f.Kill(f.Slots[2])
	eventually(t, time.Minute, "s0 declares the killed node dead", func() bool {
		for _, m := range s0.Members() {
			if m.Name == f.Slots[2].ID {
				return m.Gossip == "dead"
			}
		}
		return false
	})
	if got := s0.KnownPeerAddrs(); !slices.Equal(got, []string{live}) {
		t.Errorf("addresses the announcer joins: %v, want the live member's only, %s", got, live)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }
