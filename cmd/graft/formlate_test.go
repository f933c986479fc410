package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/discovery"
	"github.com/graftcm/graft/fsm"
)

// memGroup is a multicast group in memory: what one of its conns sends,
// every conn receives, the sender's included (as multicast with loopback
// does). A conn that does not keep up loses packets, as a socket would.
type memGroup struct {
	mu    sync.Mutex
	conns []*memConn
}

type memConn struct {
	g    *memGroup
	in   chan []byte
	done chan struct{}
	once sync.Once
}

func (g *memGroup) conn() *memConn {
	c := &memConn{g: g, in: make(chan []byte, 64), done: make(chan struct{})}
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	return c
}

func (c *memConn) Send(b []byte) error {
	c.g.mu.Lock()
	conns := slices.Clone(c.g.conns)
	c.g.mu.Unlock()
	for _, to := range conns {
		select {
		case to.in <- slices.Clone(b):
		default:
		}
	}
	return nil
}

func (c *memConn) Receive(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(b, p), netip.MustParseAddrPort("127.0.0.1:7948"), nil
	case <-c.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.g.mu.Lock()
		c.g.conns = slices.DeleteFunc(c.g.conns, func(o *memConn) bool { return o == c })
		c.g.mu.Unlock()
	})
	return nil
}

// groupBeacon runs a fresh node's beacon, at production timings, on g
// until stop or the test's end; its address is a placeholder that
// nothing answers at until the node's server runs (follow then announces
// its real gossip address, as the agent's does when it differs). It is
// an address, not a name: a DNS lookup in a synctest bubble is fatal.
func groupBeacon(t *testing.T, g *memGroup, name string) (d *agentDiscovery, stop func()) {
	t.Helper()
	key, err := discovery.DeriveKey([]byte("graft1_formlate"))
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	addr := fmt.Sprintf("192.0.2.%d:7946", len(g.conns)+1)
	g.mu.Unlock()
	b, err := discovery.New(discovery.Config{ClusterName: "graft", NodeName: name, Addr: addr, Key: key,
		Fresh: true, Conn: g.conn()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &agentDiscovery{b: b, addr: addr, log: slog.New(slog.DiscardHandler)}, stop
}

// followFor runs d.follow on srv until the test's end.
func followFor(t *testing.T, d *agentDiscovery, srv *cluster.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.follow(ctx, func() *cluster.Server { return srv })
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Issue 13 (forming, review): three fresh nodes; the lowest, s0, is heard
// and named by the two others, which decide to join it, but dies before
// it bootstraps. Their servers, started with s0 among their seeds, waited
// to be added for ever: the forming rule named s1 once s0 had gone quiet,
// but Settle had returned and nothing acted on it. s1 bootstraps its
// running server, and s2 ends in its cluster: one cluster, led by s1.
func TestFreshNodesWhoseCandidateDiesBeforeBootstrappingFormOneCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 3, nil)
		g := &memGroup{}
		_, stop0 := groupBeacon(t, g, "s0") // heard, never settles: it dies first
		d1, _ := groupBeacon(t, g, "s1")
		d2, _ := groupBeacon(t, g, "s2")
		decs := make([]discovery.Decision, 2)
		var wg sync.WaitGroup
		for i, d := range []*agentDiscovery{d1, d2} {
			wg.Go(func() {
				dec, err := d.b.Settle(t.Context())
				if err != nil {
					t.Error(err)
				}
				decs[i] = dec
			})
		}
		wg.Wait()
		for i, dec := range decs {
			if dec.Step != discovery.Join || dec.Candidate != "s0" {
				t.Fatalf("s%d decided %+v, want to join s0, its candidate", i+1, dec)
			}
		}
		stop0()
		srvs := make([]*cluster.Server, 2)
		for i, d := range []*agentDiscovery{d1, d2} {
			srvs[i] = f.Start(f.Slots[i+1], func(c *cluster.ServerConfig) { c.Join = decs[i].Join })
			followFor(t, d, srvs[i])
		}
		deadline := time.Now().Add(2 * time.Minute)
		for srvs[0].ClusterID() == "" || srvs[1].ClusterID() != srvs[0].ClusterID() {
			if time.Now().After(deadline) {
				t.Fatalf("no cluster of s1 and s2 within 2 min of s0's death: cluster IDs %q and %q, last indexes %d and %d",
					srvs[0].ClusterID(), srvs[1].ClusterID(), srvs[0].Node().LastIndex(), srvs[1].Node().LastIndex())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !srvs[0].Node().IsLeader() {
			t.Errorf("s1, the lowest left, does not lead the cluster")
		}
		// s2's beacon follows: it announces s2 a member of s1's cluster.
		for d := d2.b.Decision(); d.Step != discovery.Member || d.Cluster != srvs[0].ClusterID(); d = d2.b.Decision() {
			if time.Now().After(deadline) {
				t.Fatalf("s2's beacon decides %+v, want a member of cluster %s", d, srvs[0].ClusterID())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// Issue 13 (forming, review): of five fresh hosts, three joined each
// other before their candidate bootstrapped; one of them then joined the
// new leader, which learned of the two others only through that node's
// relays (memberlist sends the news of a node a few times, to random
// members), lost in one try in ten, and then only at the next periodic
// exchange, up to a minute later. Here relays and periodic exchanges
// never happen: a fresh node that sees the leader in its ring through
// another member, but is unknown to it, tells it of itself directly, and
// is added.
func TestAFreshNodeTheLeaderKnowsNotOfIsAddedThoughItSeesTheLeaderInItsRing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := cluster.TestServerConfig()
		// No relays: no gossip, no probes (news ride on them too), no
		// periodic exchanges; only joins exchange member lists.
		cfg.Gossip.GossipInterval = time.Hour
		cfg.Gossip.ProbeInterval = time.Hour
		cfg.Gossip.PushPullInterval = time.Hour
		f := clustertest.NewFleet(t, 3, &cfg)
		leader := f.Start(f.Slots[0], nil) // alone: bootstraps
		// Seeds that never answer: each waits to be added.
		waiting := func(c *cluster.ServerConfig) { c.Join = []string{"192.0.2.1:7946"} }
		relay := f.Start(f.Slots[1], waiting)
		unknown := f.Start(f.Slots[2], waiting)
		for leader.ClusterID() == "" {
			time.Sleep(50 * time.Millisecond)
		}
		// The relay joins the leader, then the unknown node: the unknown
		// node learns of the leader from the relay, the leader of nobody.
		for _, to := range []string{f.Slots[0].GossipAddr(), f.Slots[2].GossipAddr()} {
			if _, err := relay.Join([]string{to}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if !aliveIn(unknown, "s0") || aliveIn(leader, "s2") {
			t.Fatalf("setup: s2 sees s0: %v, s0 sees s2: %v; want s2 to see s0 only", aliveIn(unknown, "s0"), aliveIn(leader, "s2"))
		}
		g := &memGroup{}
		d0, _ := groupBeacon(t, g, "s0")
		d0.b.SetAddr(f.Slots[0].GossipAddr())
		d0.b.SetState(true, leader.ClusterID())
		d2, _ := groupBeacon(t, g, "s2")
		followFor(t, d2, unknown)
		deadline := time.Now().Add(2 * time.Minute)
		for unknown.ClusterID() != leader.ClusterID() {
			if time.Now().After(deadline) {
				t.Fatalf("s2, unknown to the leader it hears, not added within 2 min: the leader sees it: %v",
					aliveIn(leader, "s2"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// aliveIn reports whether srv sees the node of that name alive in its
// ring.
func aliveIn(srv *cluster.Server, name string) bool {
	for _, m := range srv.Members() {
		if m.Name == name && m.Gossip == "alive" {
			return true
		}
	}
	return false
}

// Issue 13 (forming, review): a joiner stopped before it was added (a
// raft directory, made when its server started, with nothing in it, and
// no peers file) was not fresh to discovery, and, with nothing to join,
// bootstrapped a second cluster when started again. Its data dir is
// fresh; one with remembered peers or raft state is not.
func TestADataDirWhoseRaftDirHoldsNoStateIsFresh(t *testing.T) {
	fresh := func(t *testing.T, dir string) bool {
		t.Helper()
		ok, err := freshDataDir(dir)
		if err != nil {
			t.Fatalf("freshDataDir(%s): %v", dir, err)
		}
		return ok
	}
	open := func(t *testing.T, dir string, bootstrap bool) *raftnode.Node {
		t.Helper()
		cfg := raftnode.TestConfig()
		cfg.NodeID, cfg.DataDir, cfg.Bootstrap = "n1", dir, bootstrap
		n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	empty := t.TempDir()
	if !fresh(t, empty) {
		t.Errorf("an empty data dir is not fresh")
	}
	joiner := t.TempDir()
	if err := open(t, joiner, false).Close(); err != nil {
		t.Fatal(err)
	}
	if !fresh(t, joiner) {
		t.Errorf("the data dir of a joiner stopped before it was added is not fresh")
	}
	remembers := t.TempDir()
	if err := os.WriteFile(filepath.Join(remembers, rememberedPeersFile), []byte(`["10.0.0.1:7946"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if fresh(t, remembers) {
		t.Errorf("a data dir that remembers peers is fresh")
	}
	member := t.TempDir()
	n := open(t, member, true)
	waitUntil(t, "the bootstrapped node to lead", func() (bool, error) { return n.IsLeader(), nil })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if fresh(t, member) {
		t.Errorf("the data dir of a node that bootstrapped a cluster is fresh")
	}
}
