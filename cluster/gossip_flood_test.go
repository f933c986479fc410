package cluster_test

import (
	"crypto/rand"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// startKeyedServer starts a server on loopback with real, encrypted
// gossip, as in production.
func startKeyedServer(t *testing.T, id string, tok clusterkey.Token, join []string, logger *slog.Logger) *cluster.Server {
	t.Helper()
	cfg := cluster.TestServerConfig()
	cfg.Raft.NodeID, cfg.Raft.DataDir, cfg.Raft.Logger = id, t.TempDir(), logger
	cfg.Token, cfg.Join = &tok, join
	// Production's: memberlist gives a stream this long to be read.
	cfg.Gossip.TCPTimeout = cluster.LANGossip().TCPTimeout
	s, err := cluster.StartServer(cfg, cluster.ServerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sourceIPs returns n loopback addresses the test can send from
// (127.0.0.2 and up), or just 127.0.0.1 where only that one works.
func sourceIPs(t *testing.T, n int) []net.IP {
	t.Helper()
	var ips []net.IP
	for i := range n {
		ip := net.IPv4(127, 0, 0, byte(2+i))
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			t.Logf("cannot send from %v (%v): every attack comes from 127.0.0.1", ip, err)
			return []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		c.Close()
		ips = append(ips, ip)
	}
	return ips
}

// Issue 8, item 7: memberlist logs an ERROR line for every packet it
// cannot decrypt, and anyone can send those. 20,000 garbage packets from
// four sockets on two addresses must leave a handful of lines (one per
// address per 10 s window), the first still an error or warning that
// names its source.
func TestGossipGarbagePacketsDoNotFloodLog(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tap := logtest.New()
	a := startKeyedServer(t, "a", tok, nil, slog.New(tap))
	target, err := net.ResolveUDPAddr("udp", a.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	ips := sourceIPs(t, 2)
	senders := udpSenders(t, ips, 4)
	fromSender := func(l logtest.Line) bool {
		for _, s := range senders {
			addr := s.LocalAddr().String()
			if l.Attrs["remote"] == addr || strings.Contains(l.Text, "from="+addr+" ") {
				return true
			}
		}
		return false
	}

	// Version byte 1 (AES-GCM) and noise: no key decrypts it.
	packet := make([]byte, 96)
	rand.Read(packet)
	packet[0] = 1
	start := time.Now()
	for i := range 20000 {
		if _, err := senders[i%len(senders)].WriteToUDP(packet, target); err != nil {
			t.Fatal(err)
		}
	}
	waitLogged(t, tap, target)
	elapsed := time.Since(start)

	lines := tap.Matching(fromSender)
	windows := 1 + int(elapsed/(10*time.Second))
	want := len(ips) * windows
	t.Logf("%d log lines for 20,000 garbage packets in %v", len(lines), elapsed.Round(time.Millisecond))
	for i, l := range lines[:min(len(lines), 5)] {
		t.Logf("line %d: %v %s", i, l.Level, l.Text)
	}
	if len(lines) == 0 {
		t.Fatal("no line about the garbage packets")
	}
	if len(lines) > want {
		t.Errorf("%d log lines for 20,000 garbage packets, want at most %d (one per source address per 10s)", len(lines), want)
	}
	first := lines[0]
	if first.Level < slog.LevelWarn || !strings.Contains(first.Text, "Decrypt packet failed") {
		t.Errorf("first line %v %q, want a warning or error that decryption failed", first.Level, first.Text)
	}
	if remote := first.Attrs["remote"]; !fromSender(logtest.Line{Attrs: map[string]string{"remote": remote}}) {
		t.Errorf("first line's remote attribute is %q, want a sender's address", remote)
	}
}

// udpSenders opens n UDP sockets, on the addresses ips in turn.
func udpSenders(t *testing.T, ips []net.IP, n int) []*net.UDPConn {
	t.Helper()
	var senders []*net.UDPConn
	for i := range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ips[i%len(ips)]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		senders = append(senders, c)
	}
	return senders
}

// waitLogged returns once the server at target has logged what was sent
// to its UDP port so far. It reads its socket in order, so once it logs an
// empty datagram sent now it has logged what came before (the kernel
// drops what overflows the socket's buffer, so the datagram is resent).
func waitLogged(t *testing.T, tap *logtest.Recorder, target *net.UDPAddr) {
	t.Helper()
	marker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	addr := marker.LocalAddr().String()
	waitFor(t, time.Minute, "the empty datagram logged", func() bool {
		if _, err := marker.WriteToUDP(nil, target); err != nil {
			t.Fatal(err)
		}
		return len(tap.Matching(func(l logtest.Line) bool { return strings.Contains(l.Text, addr) })) > 0
	})
}
