package discovery

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzHandlePacket hands a beacon what arrives on the discovery socket.
// With sign set the input is given a valid MAC under the cluster's key
// first, so that the fuzzer explores what a key holder can send as well
// as what a stranger can. Whatever arrives: no panic; a packet that is
// not authentic records nothing and allocates nothing; an authentic one
// decodes to a message that encodes back to the same packet (but for
// flag bits this version does not know), is recorded as it says, and is
// ignored when it comes again (a replay).
func FuzzHandlePacket(f *testing.F) {
	key := testKey(f, "k1")
	query := message{kind: kindQuery, bootstrapped: true, settled: true, boot: 1 << 62, seq: 1 << 40, cluster: "graft",
		node: "q", addr: "[fe80::1%eth0]:7946", clusterID: "0f8e2c1d-3b4a-4c5d-9e6f-7a8b9c0d1e2f"}
	largest := announcement(strings.Repeat("n", 255), 1, 1)
	largest.addr, largest.clusterID, largest.candidate = strings.Repeat("a", 255), strings.Repeat("i", 255), strings.Repeat("d", 255)
	other := announcement("o", 3, 4)
	other.cluster = "staging"
	for _, m := range []message{announcement("p", 10, 1), query, largest, other, announcement("self", 1, 1)} {
		f.Add(encodeWith(f, m, key), false)
		f.Add(encodeWith(f, m, testKey(f, "k2")), true)
	}
	f.Add([]byte("gDSC\x01garbage"), false)
	f.Add(make([]byte, MaxPacket+1), true)
	from := netip.MustParseAddrPort("10.0.0.9:7948")
	f.Fuzz(func(t *testing.T, pkt []byte, sign bool) {
		now := time.Now()
		if sign && len(pkt) >= macLen {
			pkt = bytes.Clone(pkt)
			if len(pkt) >= headerLen+macLen {
				// The send time: now, moved by up to twice the skew
				// allowed either way, so signed packets are fresh
				// and stale.
				span := uint64(4 * DefaultMaxSkew)
				off := time.Duration(binary.BigEndian.Uint64(pkt[24:32])%span) - 2*DefaultMaxSkew
				binary.BigEndian.PutUint64(pkt[24:32], uint64(now.Add(off).UnixNano()))
			}
			mac := newMAC(key)
			mac.Write(pkt[:len(pkt)-macLen])
			pkt = mac.Sum(pkt[:len(pkt)-macLen])
		}
		b, err := New(Config{ClusterName: "graft", NodeName: "self", Addr: "self:7946", Key: key, Conn: &hubConn{}, MaxPeers: 4})
		if err != nil {
			t.Fatal(err)
		}
		fr, _, ok := split(pkt)
		authentic := ok && string(fr.field(0)) == "graft" && fr.authentic(newMAC(key), make([]byte, 0, macLen))
		if !authentic {
			b.handle(pkt, from) // the first line of a kind is logged
			if n := testing.AllocsPerRun(2, func() { b.handle(pkt, from) }); n != 0 {
				t.Fatalf("a packet that is not authentic allocated %v times", n)
			}
			if st := b.Stats(); st.Accepted != 0 || len(b.Peers()) != 0 {
				t.Fatalf("a packet that is not authentic was recorded: %+v, peers %v", st, b.Peers())
			}
			keyless, err := New(Config{ClusterName: "graft", NodeName: "self", Conn: &hubConn{}})
			if err != nil {
				t.Fatal(err)
			}
			keyless.handle(pkt, from)
			if s := keyless.Sightings(); len(s) > 1 || len(s) == 1 && (!ok || s[0].Cluster != "graft") {
				t.Fatalf("a keyless beacon sighted %+v", s)
			}
			return
		}
		m := fr.message()
		again, err := m.encode(nil, newMAC(key))
		if err != nil {
			t.Fatalf("encoding a decoded message: %v", err)
		}
		want := bytes.Clone(pkt[:fr.body])
		want[6] &= flagBootstrapped | flagFresh | flagSettled
		if !bytes.Equal(again[:len(again)-macLen], want) {
			t.Fatalf("message %+v encodes to\n%x, want\n%x", m, again, want)
		}
		b.handle(pkt, from)
		switch age := now.Sub(time.Unix(0, int64(m.sent))).Abs(); {
		case age > DefaultMaxSkew+time.Second:
			if st := b.Stats(); st.Accepted != 0 || st.Ignored[reasonStale.String()] != 1 || len(b.Peers()) != 0 {
				t.Fatalf("a packet sent %v from now: %+v, peers %v; want it ignored as stale", age, st, b.Peers())
			}
			return
		case age > DefaultMaxSkew-time.Second:
			return // at the bound: either way is right
		}
		if m.node == "self" {
			if len(b.Peers()) != 0 {
				t.Fatalf("a packet in this node's name recorded peers %v", b.Peers())
			}
			return
		}
		p, ok := peerNamed(b, m.node)
		if !ok || p.Addr != m.addr || p.ClusterID != m.clusterID || p.Candidate != m.candidate ||
			p.Fresh != m.fresh || p.Bootstrapped != m.bootstrapped || p.Settled != m.settled {
			t.Fatalf("message %+v recorded as %+v (%v)", m, p, ok)
		}
		b.handle(pkt, from)
		if st := b.Stats(); st.Accepted != 1 || st.Ignored[reasonReplayed.String()] != 1 {
			t.Fatalf("the same packet twice: %+v, want one accepted and one replay ignored", st)
		}
	})
}
