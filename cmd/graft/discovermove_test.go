package main

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/discovery"
)

// udpGroup is a set of real UDP sockets on 127.0.0.1 that stands in for
// the multicast group (loopback has no multicast): a packet sent on one
// goes to every one, the sender's included.
type udpGroup struct {
	mu    sync.Mutex
	addrs []netip.AddrPort
}

type groupConn struct {
	g *udpGroup
	c *net.UDPConn
}

func (g *udpGroup) conn(t *testing.T) *groupConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	g.mu.Lock()
	defer g.mu.Unlock()
	g.addrs = append(g.addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
	return &groupConn{g: g, c: c}
}

func (gc *groupConn) Send(b []byte) error {
	gc.g.mu.Lock()
	addrs := slices.Clone(gc.g.addrs)
	gc.g.mu.Unlock()
	for _, a := range addrs {
		if _, err := gc.c.WriteToUDPAddrPort(b, a); err != nil {
			return err
		}
	}
	return nil
}

func (gc *groupConn) Receive(b []byte) (int, netip.AddrPort, error) {
	return gc.c.ReadFromUDPAddrPort(b)
}
func (gc *groupConn) Close() error { return gc.c.Close() }

// testBeaconTimings announce fast, for tests.
func testBeaconTimings(cfg discovery.Config) discovery.Config {
	cfg.Interval, cfg.PeerTTL = 50*time.Millisecond, 2*time.Second
	return cfg
}

// runTestBeacon runs a beacon on g, keyed with the cluster key secret,
// until the test ends.
func runTestBeacon(t *testing.T, g *udpGroup, name, addr, secret string) *discovery.Beacon {
	t.Helper()
	b, err := discovery.New(testBeaconTimings(discovery.Config{ClusterName: "graft", NodeName: name, Addr: addr,
		Key: derived(t, secret), Conn: g.conn(t)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(goRun(b.Run, nil))
	return b
}

func derived(t *testing.T, secret string) []byte {
	t.Helper()
	k, err := discovery.DeriveKey([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// withDiscovery gives the in-process agent p a beacon on g, under its
// current key, followed as the agent follows its own (see
// followDiscovery), and stopped when the agent stops.
func withDiscovery(t *testing.T, p *inProcess, g *udpGroup) *agentDiscovery {
	t.Helper()
	side := p.current()
	b, err := discovery.New(testBeaconTimings(discovery.Config{ClusterName: "graft", NodeName: p.o.hostname,
		Addr: side.srv.GossipAddr(), Key: derived(t, side.key.tok.Secret()), Conn: g.conn(t), Logger: p.log}))
	if err != nil {
		t.Fatal(err)
	}
	d := &agentDiscovery{b: b, addr: side.srv.GossipAddr(), log: p.log}
	d.stop = goRun(b.Run, nil)
	p.mu.Lock()
	p.disc = d
	p.mu.Unlock()
	p.followDiscovery()
	return d
}

func hears(b *discovery.Beacon, name string) (discovery.Peer, bool) {
	for _, p := range b.Peers() {
		if p.Name == name {
			return p, true
		}
	}
	return discovery.Peer{}, false
}

// Issue 13 (review): after `graft join` moved a running node to another
// cluster (another key), its beacon went on announcing under the old key
// and the old cluster's state, and following the old cluster's nodes: the
// new cluster's nodes never heard it. The beacon takes the new side's key
// and state: the new cluster's nodes hear it as one of theirs, and it
// hears only them.
func TestANodeMovedToAnotherClusterIsHeardUnderItsKey(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	idA := clusterIDOf(t, a.data)
	b := startInProcess(t, "b", nil)
	oldSecret := b.current().key.tok.Secret()
	g := &udpGroup{}
	d := withDiscovery(t, b, g)
	// obs-a stands for a on the LAN, announcing a's address; obs-b is a
	// fresh node of b's old key.
	obsA := runTestBeacon(t, g, "obs-a", gossip, key)
	obsA.SetState(true, idA)
	runTestBeacon(t, g, "obs-b", closedPort(t), oldSecret)
	waitUntil(t, "b to hear obs-b, of its key", func() (bool, error) { _, ok := hears(d.b, "obs-b"); return ok, nil })

	res, err := b.join(b.current())(t.Context(), api.JoinRequest{Addrs: []string{gossip}, Token: key, OverSocket: true})
	if err != nil || !res.Restarting {
		t.Fatalf("join with a's key: %+v, %v; want a restart", res, err)
	}
	inCluster(t, a, "b", b.data)

	waitUntil(t, "obs-a, of a's key, to hear b as a member of a's cluster", func() (bool, error) {
		p, ok := hears(obsA, "b")
		return ok && p.Bootstrapped && p.ClusterID == idA, nil
	})
	refused := d.b.Stats().Ignored["unauthenticated"]
	waitUntil(t, "b to refuse obs-b's packets, of its old key", func() (bool, error) {
		return d.b.Stats().Ignored["unauthenticated"] > refused+2, nil
	})
	if _, ok := hears(d.b, "obs-b"); ok {
		t.Error("b, moved to a's cluster, still hears obs-b, of its old key")
	}
	if _, ok := hears(d.b, "obs-a"); !ok {
		t.Error("b, moved to a's cluster, does not hear obs-a, of a's key")
	}
	if dec := d.b.Decision(); dec.Step != discovery.Member || dec.Cluster != idA {
		t.Errorf("b's decision after the move: %+v, want a member of %s", dec, idA)
	}
}

// silentListener takes TCP connections and never answers on them: a
// gossip join to it waits for memberlist's TCPTimeout (10 s).
func silentListener(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}
}

// Issue 13 (review): an agent that stopped while discovery joined a peer
// heard at an address that never answers waited for the join, up to
// memberlist's TCPTimeout (10 s). It stops well before.
func TestAnAgentStopsPromptlyWhileDiscoveryJoinsAnAddressThatNeverAnswers(t *testing.T) {
	b := startInProcess(t, "b", nil)
	id := clusterIDOf(t, b.data)
	g := &udpGroup{}
	withDiscovery(t, b, g)
	addr, accepted := silentListener(t)
	// A member of b's cluster, as far as the LAN says, at that address.
	ghost := runTestBeacon(t, g, "ghost", addr, b.current().key.tok.Secret())
	ghost.SetState(true, id)
	waitUntil(t, "discovery to join the address heard", func() (bool, error) { return accepted() > 0, nil })
	t0 := time.Now()
	b.stop(false, make(chan struct{}))
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("the agent took %v to stop while discovery joined an address that never answers; want well under 10s", took)
	}
}
