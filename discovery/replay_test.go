package discovery

import (
	"testing"
	"time"
)

// capture reads from hc, a socket of the hub, until it gets a packet of
// node, and returns it.
func capture(t *testing.T, hc *hubConn, node string) []byte {
	t.Helper()
	buf := make([]byte, MaxPacket+1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := hc.c.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, _, err := hc.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no packet of %s captured: %v", node, err)
		}
		if f, _, ok := split(buf[:n]); ok && string(f.field(1)) == node {
			return append([]byte(nil), buf[:n]...)
		}
	}
}

// remembers reports whether b still remembers a peer named name (live or
// not).
func remembers(b *Beacon, name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.peers[name]
	return ok
}

// Issue 13 (review): a departed sender's packets, recorded, were accepted
// again once it was forgotten (3 PeerTTL after its last packet): its old
// address looked alive again. A packet sent more than MaxSkew ago is
// stale, and a sender is remembered until all it sent is.
func TestAPacketReplayedAfterItsSenderWasForgottenIsIgnored(t *testing.T) {
	h := &hub{}
	tune := func(c Config) Config {
		c.Interval, c.PeerTTL, c.MaxSkew = 50*time.Millisecond, 500*time.Millisecond, time.Second
		return c
	}
	recv := start(t, tune(testConfig(t, h, "r")))
	tap := h.conn(t)
	sender := start(t, tune(testConfig(t, h, "s")))
	recorded := capture(t, tap, "s")
	waitFor(t, "r to hear s", func() bool { _, ok := peerNamed(recv.Beacon, "s"); return ok })
	sender.stop()
	forgotten := time.Now()
	waitFor(t, "r to forget s", func() bool { return !remembers(recv.Beacon, "s") })
	if took := time.Since(forgotten); took < 2*time.Second {
		t.Errorf("s forgotten %v after it stopped, want at least 2 MaxSkew (2s): a packet of it could still be fresh", took)
	}
	stale := recv.Stats().Ignored["stale"]
	newRawSender(t).to(t, recv.Beacon.cfg.Conn.(*hubConn), recorded)
	waitFor(t, "the replayed packet to be read", func() bool {
		return recv.Stats().Ignored["stale"] > stale || remembers(recv.Beacon, "s")
	})
	if remembers(recv.Beacon, "s") {
		t.Errorf("r took a packet of s, recorded and replayed after s was forgotten: peers %+v", recv.Peers())
	}
}

// A packet stamped ahead of the receiver's clock by more than MaxSkew is
// stale too; one within MaxSkew either way is accepted.
func TestAPacketIsFreshWithinMaxSkewOfTheReceiversClock(t *testing.T) {
	b, hc := listening(t)
	key := testKey(t, "k1")
	for i, tc := range []struct {
		offset time.Duration
		fresh  bool
	}{{-DefaultMaxSkew / 2, true}, {DefaultMaxSkew / 2, true}, {-2 * DefaultMaxSkew, false}, {2 * DefaultMaxSkew, false}} {
		m := announcement(string(rune('a'+i)), 10, 1)
		m.sent = uint64(time.Now().Add(tc.offset).UnixNano())
		sendAndAwait(t, b, hc, encodeWith(t, m, key))
		if _, ok := peerNamed(b.Beacon, m.node); ok != tc.fresh {
			t.Errorf("a packet sent %v from the receiver's now: accepted %v, want %v", tc.offset, ok, tc.fresh)
		}
	}
	if n := b.Stats().Ignored["stale"]; n != 2 {
		t.Errorf("stale packets counted %d, want 2", n)
	}
}
