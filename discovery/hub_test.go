package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// hub is a group of real unicast UDP sockets on 127.0.0.1 that stands in
// for a multicast group (loopback here has no multicast): a packet sent
// by one goes to every socket, the sender's included, as multicast with
// loopback does.
type hub struct {
	mu    sync.Mutex
	addrs []netip.AddrPort
	// delay, if set, delays each packet to each socket (a real write
	// after a timer), so that nodes hear each other at different times.
	delay func() time.Duration
	// drop, if set, says whether to lose a packet to one socket.
	drop func() bool
	wg   sync.WaitGroup // delayed writes under way
}

// hubConn is one socket of a hub.
type hubConn struct {
	h *hub
	c *net.UDPConn
}

func (h *hub) conn(t testing.TB) *hubConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.addrs = append(h.addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
	h.mu.Unlock()
	return &hubConn{h: h, c: c}
}

func (hc *hubConn) Send(b []byte) error {
	hc.h.mu.Lock()
	addrs := slices.Clone(hc.h.addrs)
	hc.h.mu.Unlock()
	for _, a := range addrs {
		if hc.h.dropOne() {
			continue
		}
		if hc.h.delay == nil {
			if _, err := hc.c.WriteToUDPAddrPort(b, a); err != nil {
				return err
			}
			continue
		}
		pkt, d := slices.Clone(b), hc.h.delayFor()
		hc.h.wg.Add(1)
		time.AfterFunc(d, func() {
			defer hc.h.wg.Done()
			hc.c.WriteToUDPAddrPort(pkt, a) // the socket may have closed meanwhile
		})
	}
	return nil
}

func (h *hub) dropOne() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drop != nil && h.drop()
}

func (h *hub) delayFor() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.delay()
}

func (hc *hubConn) Receive(b []byte) (int, netip.AddrPort, error) { return hc.c.ReadFromUDPAddrPort(b) }

func (hc *hubConn) Close() error {
	hc.h.mu.Lock()
	me := hc.c.LocalAddr().(*net.UDPAddr).AddrPort()
	hc.h.addrs = slices.DeleteFunc(hc.h.addrs, func(a netip.AddrPort) bool { return a == me })
	hc.h.mu.Unlock()
	return hc.c.Close()
}

// testKey is the derived key of a test cluster key.
func testKey(t testing.TB, clusterKey string) []byte {
	t.Helper()
	k, err := DeriveKey([]byte(clusterKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testConfig is a beacon of node name on a hub, with test timings.
// A nil hub leaves Conn to the caller.
func testConfig(t testing.TB, h *hub, name string) Config {
	cfg := Config{ClusterName: "graft", NodeName: name, Addr: name + ":7946", Key: testKey(t, "k1"), Fresh: true,
		Interval: 40 * time.Millisecond, Settle: 120 * time.Millisecond, PeerTTL: 3 * time.Second}
	if h != nil {
		cfg.Conn = h.conn(t)
	}
	return cfg
}

// running is a beacon whose Run goroutine the test owns.
type running struct {
	*Beacon
	stop func()
}

// start runs a beacon until stop or the test's end.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	r := &running{Beacon: b, stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(r.stop)
	return r
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine is shared and slow under -race).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// peerNamed returns b's live peer of that name.
func peerNamed(b *Beacon, name string) (Peer, bool) {
	for _, p := range b.Peers() {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// rawSender sends hand-made packets to a beacon's socket.
type rawSender struct{ c *net.UDPConn }

func newRawSender(t testing.TB) rawSender {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rawSender{c}
}

func (r rawSender) to(t testing.TB, hc *hubConn, pkt []byte) {
	t.Helper()
	if _, err := r.c.WriteToUDPAddrPort(pkt, hc.c.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
}

// encodeWith encodes m under a derived key.
func encodeWith(t testing.TB, m message, key []byte) []byte {
	t.Helper()
	b, err := m.encode(nil, newMAC(key))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func announcement(node string, boot, seq uint64) message {
	return message{kind: kindAnnounce, fresh: true, boot: boot, seq: seq, sent: uint64(time.Now().UnixNano()),
		cluster: "graft", node: node,
		addr: fmt.Sprintf("%s:7946", node), candidate: node}
}
