package discovery

import (
	"net/netip"
	"testing"
	"time"
)

// listening starts a keyed beacon on a hub and returns it with its
// socket, to which tests send hand-made packets.
func listening(t *testing.T) (*running, *hubConn) {
	t.Helper()
	h := &hub{}
	cfg := testConfig(t, h, "self")
	cfg.Interval = time.Hour // it sends its start query only
	b := start(t, cfg)
	// Its own start query comes back first: count from there.
	waitFor(t, "the start query to come back", func() bool { return b.Stats().Received == 1 })
	return b, cfg.Conn.(*hubConn)
}

// sendAndAwait sends pkt to the beacon and waits until it has read it.
func sendAndAwait(t *testing.T, b *running, hc *hubConn, pkt []byte) {
	t.Helper()
	before := b.Stats().Received
	newRawSender(t).to(t, hc, pkt)
	waitFor(t, "the packet to be read", func() bool { return b.Stats().Received > before })
}

func TestAuthenticAnnouncementIsRecorded(t *testing.T) {
	b, hc := listening(t)
	sendAndAwait(t, b, hc, encodeWith(t, announcement("p", 10, 1), testKey(t, "k1")))
	if p, ok := peerNamed(b.Beacon, "p"); !ok || p.Addr != "p:7946" || p.Candidate != "p" || !p.Fresh {
		t.Fatalf("peer p = %+v, %v; want it recorded as announced", p, ok)
	}
	if st := b.Stats(); st.Accepted != 1 || len(st.Ignored) != 0 {
		t.Errorf("stats %+v, want one accepted and none ignored", st)
	}
}

func TestForgedAnnouncementIsIgnored(t *testing.T) {
	b, hc := listening(t)
	// Signed with a key derived from another cluster key.
	sendAndAwait(t, b, hc, encodeWith(t, announcement("f", 10, 1), testKey(t, "not-k1")))
	// Signed right, then altered: another address.
	pkt := encodeWith(t, announcement("g", 10, 1), testKey(t, "k1"))
	pkt[len(pkt)-macLen-1-len("g:7946")+1] ^= 1
	sendAndAwait(t, b, hc, pkt)
	if ps := b.Peers(); len(ps) != 0 {
		t.Fatalf("peers %+v after forged packets, want none", ps)
	}
	if n := b.Stats().Ignored["unauthenticated"]; n != 2 {
		t.Errorf("unauthenticated packets counted %d, want 2", n)
	}
}

func TestReplayedAnnouncementIsIgnored(t *testing.T) {
	b, hc := listening(t)
	key := testKey(t, "k1")
	old := announcement("p", 10, 4)
	old.addr = "old:7946"
	oldPkt := encodeWith(t, old, key)
	sendAndAwait(t, b, hc, oldPkt)
	sendAndAwait(t, b, hc, encodeWith(t, announcement("p", 10, 5), key))
	sendAndAwait(t, b, hc, oldPkt)                                       // an older sequence number
	sendAndAwait(t, b, hc, encodeWith(t, announcement("p", 10, 5), key)) // the same one again
	sendAndAwait(t, b, hc, encodeWith(t, announcement("p", 9, 99), key)) // an earlier run's
	if p, _ := peerNamed(b.Beacon, "p"); p.Addr != "p:7946" {
		t.Fatalf("peer p's address %q after replays, want the newest, p:7946", p.Addr)
	}
	if n := b.Stats().Ignored["replayed"]; n != 3 {
		t.Errorf("replayed packets counted %d, want 3", n)
	}
}

func TestOtherClusterNameIsIgnored(t *testing.T) {
	b, hc := listening(t)
	m := announcement("o", 10, 1)
	m.cluster = "staging"
	sendAndAwait(t, b, hc, encodeWith(t, m, testKey(t, "k1")))
	if ps := b.Peers(); len(ps) != 0 {
		t.Fatalf("peers %+v after another cluster's announcement, want none", ps)
	}
	if n := b.Stats().Ignored["other_cluster"]; n != 1 {
		t.Errorf("other-cluster packets counted %d, want 1", n)
	}
}

func TestMalformedAndOversizedPacketsAreIgnored(t *testing.T) {
	b, hc := listening(t)
	good := encodeWith(t, announcement("p", 10, 1), testKey(t, "k1"))
	bad := append([]byte(nil), good...)
	bad[4] = version + 1 // another version
	for _, pkt := range [][]byte{[]byte("hello"), good[:len(good)-1], bad, append(good[:len(good):len(good)], 0)} {
		sendAndAwait(t, b, hc, pkt)
	}
	sendAndAwait(t, b, hc, make([]byte, MaxPacket+1))
	st := b.Stats()
	if st.Ignored["malformed"] != 4 || st.Ignored["oversized"] != 1 || len(b.Peers()) != 0 {
		t.Errorf("stats %+v, peers %v: want 4 malformed, 1 oversized, no peer", st, b.Peers())
	}
}

func TestAnotherNodeAnnouncingThisNodesNameIsIgnored(t *testing.T) {
	b, hc := listening(t)
	sendAndAwait(t, b, hc, encodeWith(t, announcement("self", 10, 1), testKey(t, "k1")))
	if n := b.Stats().Ignored["duplicate_name"]; n != 1 || len(b.Peers()) != 0 {
		t.Errorf("duplicate names counted %d, peers %v; want 1 and none", n, b.Peers())
	}
	// Another boot of this name is about: this node, fresh and alone as
	// far as it can tell, must not bootstrap (the other would too).
	if d := b.Decision(); d.Step == Bootstrap || !d.NameClash {
		t.Errorf("decision after hearing its own name from another boot: %+v, want no bootstrap, NameClash", d)
	}
}

func TestPeersRememberedAreCapped(t *testing.T) {
	h := &hub{}
	cfg := testConfig(t, h, "self")
	cfg.Interval, cfg.MaxPeers = time.Hour, 3
	b := start(t, cfg)
	waitFor(t, "the start query to come back", func() bool { return b.Stats().Received == 1 })
	key := testKey(t, "k1")
	for i := range 10 {
		sendAndAwait(t, b, cfg.Conn.(*hubConn), encodeWith(t, announcement(string(rune('a'+i)), 10, 1), key))
	}
	if ps := b.Peers(); len(ps) != 3 {
		t.Errorf("%d peers remembered, want the cap, 3", len(ps))
	}
	if st := b.Stats(); st.Ignored["peers_full"] != 7 {
		t.Errorf("stats %+v: want 7 peers refused", st)
	}
}

// TestUnauthenticatedPacketsAllocateNothing: what a stranger sends costs
// no memory, whatever it sends.
func TestUnauthenticatedPacketsAllocateNothing(t *testing.T) {
	b, err := New(Config{ClusterName: "graft", NodeName: "self", Addr: "self:7946", Key: testKey(t, "k1"), Conn: &hubConn{}})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("10.0.0.9:7948")
	forged := encodeWith(t, announcement("f", 10, 1), testKey(t, "k2"))
	other := announcement("o", 10, 1)
	other.cluster = "staging"
	// Recorded an hour ago, and replayed by whoever recorded it.
	recorded := announcement("r", 10, 1)
	recorded.sent = uint64(time.Now().Add(-time.Hour).UnixNano())
	for name, pkt := range map[string][]byte{"forged": forged, "other cluster": encodeWith(t, other, testKey(t, "k2")),
		"malformed": []byte("gDSC\x01garbage"), "oversized": make([]byte, MaxPacket+1),
		"replayed stale": encodeWith(t, recorded, testKey(t, "k1"))} {
		b.handle(pkt, from) // the first line of a kind is logged
		if n := testing.AllocsPerRun(100, func() { b.handle(pkt, from) }); n != 0 {
			t.Errorf("%s packet: %v allocations each, want 0", name, n)
		}
	}
}

// TestIgnoredPacketsAreLoggedOncePerReasonPerMinute: a flood of forged
// packets makes one log line, not one per packet.
func TestIgnoredPacketsAreLoggedOncePerReasonPerMinute(t *testing.T) {
	rec := &recorder{}
	b, err := New(Config{ClusterName: "graft", NodeName: "self", Addr: "self:7946", Key: testKey(t, "k1"),
		Conn: &hubConn{}, Logger: rec.logger()})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("10.0.0.9:7948")
	forged := encodeWith(t, announcement("f", 10, 1), testKey(t, "k2"))
	for range 1000 {
		b.handle(forged, from)
		b.handle([]byte("junk"), from)
	}
	if n := rec.count("ignored a discovery packet"); n != 2 {
		t.Errorf("%d log lines for 2000 ignored packets of 2 reasons, want 2", n)
	}
}
