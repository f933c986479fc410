package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// The cluster port under a flood of idle connections, each opened and then
// left to sit in a handshake slot, as a hostile process on a peer's host
// (or a botnet) would.

// muxTLS is a server's and a client's TLS for one cluster key, or none.
type muxTLS struct{ server, client *tls.Config }

func keyedTLS(t *testing.T, tok clusterkey.Token, nodeID string) muxTLS {
	server, client := clusterTLS(t, tok, nodeID)
	return muxTLS{server, client}
}

// startMux serves a cluster port on 127.0.0.1 whose raft and RPC
// connections each echo one byte.
func startMux(t *testing.T, keys muxTLS, logs *logtest.Recorder) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = logtest.New()
	}
	m := NewMux(ln, ln.Addr(), keys.server, keys.client, slog.New(logs), echoOnce, testHandshakeTimeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := (raftLayer{m}).Accept()
			if err != nil {
				return
			}
			echoOnce(c)
		}
	}()
	t.Cleanup(func() {
		m.Close()
		<-done
	})
	return m
}

func echoOnce(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err == nil {
		_, _ = c.Write(b[:])
	}
}

// testHandshakeTimeout is the test muxes' handshake timeout: long, so
// that a flood's idle handshakes are still pending however slowly a loaded
// machine runs the test. dialTimeout bounds the legitimate dials: well
// within it, so none can succeed by waiting for the flood to expire.
const (
	testHandshakeTimeout = 30 * time.Second
	dialTimeout          = 1500 * time.Millisecond
)

// dialEcho dials addr from m as kind and checks the connection works.
func dialEcho(t *testing.T, m *Mux, addr string, kind byte) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := m.Dial(context.Background(), addr, kind, dialTimeout)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("dial %q after %v: %v", kind, took, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Write([]byte{kind}); err != nil {
		t.Fatalf("write on a %q connection: %v", kind, err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != kind {
		t.Fatalf("echo on a %q connection: %q, %v", kind, b[0], err)
	}
	return took
}

// muxCase is a server's and a client's TLS: with the cluster key, or none.
type muxCase struct {
	name           string
	server, client muxTLS
}

func muxCases(t *testing.T) []muxCase {
	tok := newToken(t)
	return []muxCase{
		{"tls", keyedTLS(t, tok, "server"), keyedTLS(t, tok, "client")},
		{"plain", muxTLS{}, muxTLS{}},
	}
}

// handshaking reports the handshakes m has in progress from ip, and in all.
func handshaking(m *Mux, ip string) (fromIP, total int) {
	m.adm.mu.Lock()
	defer m.adm.mu.Unlock()
	return m.adm.perIP[ip], len(m.adm.pending)
}

// waitSpoken waits until m holds want handshakes from ip whose peers have
// sent something.
func waitSpoken(t *testing.T, m *Mux, ip string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m.adm.mu.Lock()
		n := 0
		for p := range m.adm.pending {
			if p.ip == ip && p.spoke() {
				n++
			}
		}
		m.adm.mu.Unlock()
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes from %s have spoken, want %d", n, ip, want)
		}
		<-time.After(2 * time.Millisecond)
	}
}

// flood holds idle TCP connections to a cluster port: they never send a
// byte, and each is read until the server closes it.
type flood struct {
	t     *testing.T
	addr  string
	speak bool // each sends one byte (a TLS record's type) before going idle
	mu    sync.Mutex
	conns []net.Conn
	gone  chan struct{} // a token per connection the server closed
	wg    sync.WaitGroup
}

func newFlood(t *testing.T, addr string) *flood {
	f := &flood{t: t, addr: addr, gone: make(chan struct{}, 1<<14)}
	t.Cleanup(func() {
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// open dials n idle connections from the loopback address from.
func (f *flood) open(from string, n int) {
	f.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	for range n {
		c, err := d.Dial("tcp", f.addr)
		if err != nil {
			f.t.Fatalf("flood from %s: %v", from, err)
		}
		if f.speak {
			_, _ = c.Write([]byte{0x16})
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Go(func() {
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 4096))
			f.gone <- struct{}{}
		})
	}
}

// fill floods from the loopback address from until m holds want
// handshakes from it. Connections that expire meanwhile are replaced;
// extra ones only flood harder.
func (f *flood) fill(m *Mux, from string, want int) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		have, _ := handshaking(m, from)
		if have >= want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("server holds %d handshakes from %s, want %d", have, from, want)
		}
		f.open(from, want-have)
		settle := time.Now().Add(500 * time.Millisecond)
		for have < want && time.Now().Before(settle) {
			<-time.After(2 * time.Millisecond)
			have, _ = handshaking(m, from)
		}
	}
}

// waitGone waits until the server has closed n more of the flood's
// connections.
func (f *flood) waitGone(n int) {
	f.t.Helper()
	expire := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-f.gone:
		case <-expire:
			f.t.Fatalf("server closed %d of the flood's connections, want %d", i, n)
		}
	}
}

// loopback is the address 127.0.0.i.
func loopback(i int) string { return fmt.Sprintf("127.0.0.%d", i) }

// memberHandshake completes a handshake with the port at addr from the
// loopback address from, as a member would, so that the server knows that
// address.
func memberHandshake(t *testing.T, addr, from string, client *tls.Config) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if client != nil {
		c = tls.Client(c, client)
	}
	var ack [1]byte
	if _, err := c.Write([]byte{ConnRPC}); err != nil {
		t.Fatalf("member at %s: %v", from, err)
	}
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != connAck {
		t.Fatalf("member at %s: answer %q, %v", from, ack[0], err)
	}
}

// stalledDial dials from a mux whose TLS client stops before sending its
// certificate, until release is called, so the dial sits in one of the
// server's handshake slots. It returns once the dial is stalled there.
func stalledDial(t *testing.T, tok clusterkey.Token, addr string) (release func() error) {
	t.Helper()
	keys := keyedTLS(t, tok, "stalled")
	cert := keys.client.Certificates[0]
	stalled, resume := make(chan struct{}), make(chan struct{})
	keys.client = keys.client.Clone()
	keys.client.Certificates = nil
	keys.client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		close(stalled)
		<-resume
		return &cert, nil
	}
	m := startMux(t, keys, nil)
	res := make(chan error, 1)
	go func() {
		c, err := m.Dial(context.Background(), addr, ConnRPC, 10*time.Second)
		if err == nil {
			c.Close()
		}
		res <- err
	}()
	t.Cleanup(func() {
		select {
		case <-resume:
		default:
			close(resume)
		}
		<-res
	})
	select {
	case <-stalled:
	case err := <-res:
		t.Fatalf("dial did not stall: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("dial did not reach the client certificate")
	}
	return func() error {
		close(resume)
		err := <-res
		res <- err // for the cleanup
		return err
	}
}

// Idle connections from a peer's own address, kept at the per-address cap,
// used to refuse the peer's next dial (its writes then failed with a 503
// "no leader" while a leader was up). Now each dial closes the address's
// oldest handshake instead, and gets in at once, every time.
func TestIdleHandshakesFromPeerAddressDoNotStarveDials(t *testing.T) {
	for _, tc := range muxCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			logs := logtest.New()
			server := startMux(t, tc.server, logs)
			client := startMux(t, tc.client, nil)
			addr := server.advertise.String()
			f := newFlood(t, addr)
			var slowest time.Duration
			for range 5 {
				for _, kind := range []byte{ConnRaft, ConnRPC} {
					f.fill(server, "127.0.0.1", maxPendingPerIP)
					slowest = max(slowest, dialEcho(t, client, addr, kind))
				}
			}
			t.Logf("slowest dial through the flood: %v", slowest)
			logs.Wait(t, 10*time.Second, "too many connections handshaking from one address; closing its oldest", `remote="127.0.0.1"`)
		})
	}
}

// A dial that the server closes for load is told why, in place of a guess
// at the cluster key: here one stalled in its TLS handshake while
// connections from its own address, each stalled after its first byte,
// pile up behind it.
func TestDialClosedForLoadNamesTheCause(t *testing.T) {
	tok := newToken(t)
	logs := logtest.New()
	server := startMux(t, keyedTLS(t, tok, "server"), logs)
	addr := server.advertise.String()
	release := stalledDial(t, tok, addr)
	f := newFlood(t, addr)
	f.speak = true // silent ones would be evicted first
	f.open("127.0.0.1", maxPendingPerIP-1)
	// Under load the flood's bytes may reach the server late: the last
	// one must find every other handshake known to have spoken, or it
	// would evict a silent one instead of the stalled dial.
	waitSpoken(t, server, "127.0.0.1", maxPendingPerIP)
	f.open("127.0.0.1", 1)
	logs.Wait(t, 10*time.Second, "too many connections handshaking from one address", `remote="127.0.0.1"`)
	err := release()
	t.Logf("dial: %v", err)
	if err == nil {
		t.Fatal("the stalled dial got in, but its handshake slot was taken")
	}
	want := "peer " + addr + " refused the connection: too many connections handshaking from this address"
	if !strings.Contains(err.Error(), want) || !errors.Is(err, errBusyAddr) {
		t.Errorf("dial: %v, want an error containing %q", err, want)
	}
	if strings.Contains(err.Error(), "cluster key") {
		t.Errorf("dial: %v blames the cluster key", err)
	}
}

// When every handshake slot is held by addresses the server knows, a dial
// from an unknown address is refused, and told why.
func TestDialRefusedForLoadNamesTheCause(t *testing.T) {
	for _, tc := range muxCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			server := startMux(t, tc.server, nil)
			client := startMux(t, tc.client, nil)
			addr := server.advertise.String()
			f := newFlood(t, addr)
			const members = maxPendingHandshakes / maxPendingPerIP
			for i := 2; i < 2+members; i++ {
				memberHandshake(t, addr, loopback(i), tc.client.client)
				f.fill(server, loopback(i), maxPendingPerIP)
			}
			_, err := client.Dial(context.Background(), addr, ConnRPC, dialTimeout)
			t.Logf("dial from an unknown address: %v", err)
			want := "peer " + addr + " refused the connection: too many connections handshaking"
			if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, errBusy) {
				t.Fatalf("dial: %v, want an error containing %q", err, want)
			}
			// A known member still gets in, in place of its oldest.
			memberHandshake(t, addr, loopback(2), tc.client.client)
		})
	}
}

// A flood from many unknown addresses, filling every handshake slot and
// churning, neither refuses a member's new dial nor closes a member's
// handshake in progress.
func TestUnknownFloodDoesNotStarveKnownMember(t *testing.T) {
	tok := newToken(t)
	server := startMux(t, keyedTLS(t, tok, "server"), nil)
	client := startMux(t, keyedTLS(t, tok, "client"), nil)
	addr := server.advertise.String()
	dialEcho(t, client, addr, ConnRPC) // the server now knows 127.0.0.1

	f := newFlood(t, addr)
	const perFlood = maxPendingHandshakes/maxPendingPerIP + 1 // addresses
	for i := range perFlood {
		f.open(loopback(2+i), maxPendingPerIP)
	}
	f.waitGone(perFlood*maxPendingPerIP - maxPendingHandshakes)
	if _, total := handshaking(server, ""); total != maxPendingHandshakes {
		t.Fatalf("%d handshakes in progress, want %d", total, maxPendingHandshakes)
	}
	for _, kind := range []byte{ConnRaft, ConnRPC} {
		t.Logf("member dial %q through the flood: %v", kind, dialEcho(t, client, addr, kind))
	}
	// The first took the slot of the oldest unknown handshake, and freed
	// it before the second came.
	f.waitGone(1)

	// A member's handshake in progress outlives a whole turnover of the
	// unknown handshakes around it.
	release := stalledDial(t, tok, addr)
	start := time.Now()
	_, total := handshaking(server, "")
	for i := range perFlood {
		f.open(loopback(2+perFlood+i), maxPendingPerIP)
	}
	// Each arrival past the free slots closes the oldest unknown handshake,
	// more than there were older than the member's.
	f.waitGone(perFlood*maxPendingPerIP - (maxPendingHandshakes - total))
	t.Logf("second flood took %v", time.Since(start))
	if err := release(); err != nil {
		t.Fatalf("member's stalled dial: %v", err)
	}
}

// An evicted handshake could run on until its own timeout: eviction moved
// its deadline to now, and a handshake that had not yet set its own
// deadline then set it 3 s ahead, outside the cap. Of many idle
// connections from one address, all but the last few are closed at once.
func TestEvictedHandshakeDoesNotOutliveItsSlot(t *testing.T) {
	tok := newToken(t)
	m := startMux(t, keyedTLS(t, tok, "server"), nil)
	f := newFlood(t, m.ln.Addr().String())
	const n = 400
	f.open("127.0.0.1", n)
	// The server's handshake timeout is 30 s: closing these in 10 s is
	// eviction's doing.
	expire := time.After(10 * time.Second)
	for i := range n - maxPendingPerIP {
		select {
		case <-f.gone:
		case <-expire:
			fromIP, _ := handshaking(m, "127.0.0.1")
			t.Fatalf("%d of %d idle connections closed, want %d; %d still counted", i, n, n-maxPendingPerIP, fromIP)
		}
	}
}

// A process on a peer's host that keeps opening idle connections evicted
// the peer's own handshakes (the oldest went first, whatever it was
// doing). A peer sends its TLS hello at once, silent connections are
// evicted first, and a known address has room for more: the peer's dials
// get in while the flood churns.
func TestChurningFloodFromPeerAddressDoesNotStarveDials(t *testing.T) {
	tok := newToken(t)
	server := startMux(t, keyedTLS(t, tok, "server"), nil)
	client := startMux(t, keyedTLS(t, tok, "client"), nil)
	addr := server.ln.Addr().String()
	dialEcho(t, client, addr, ConnRPC) // the peer's address is known
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 4000 { // bounded: the race detector tires of endless goroutines
			select {
			case <-stop:
				return
			default:
			}
			if c, err := d.Dial("tcp", addr); err == nil {
				conns = append(conns, c)
			}
			if len(conns) > 2*maxPendingPerKnownIP { // the server closed the old ones
				conns[0].Close()
				conns = conns[1:]
			}
		}
	})
	defer func() {
		close(stop)
		churn.Wait()
	}()
	for i := range 10 {
		kind := ConnRaft
		if i%2 == 1 {
			kind = ConnRPC
		}
		dialEcho(t, client, addr, kind)
	}
}
