package discovery

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDerivedKeyIsStablePerClusterKey(t *testing.T) {
	a1, a2, b := testKey(t, "graft1_AAAA"), testKey(t, "graft1_AAAA"), testKey(t, "graft1_AAAB")
	if !bytes.Equal(a1, a2) || len(a1) != 32 {
		t.Fatalf("one cluster key derived %x and %x, want the same 32 bytes", a1, a2)
	}
	if bytes.Equal(a1, b) {
		t.Error("two cluster keys derived the same key")
	}
	if _, err := DeriveKey(nil); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("DeriveKey(nil) = %v, want ErrEmptyKey", err)
	}
}

func TestPacketCarriesEveryFieldAndItsMAC(t *testing.T) {
	m := message{kind: kindQuery, bootstrapped: true, fresh: true, settled: true, boot: 1 << 60, seq: 42,
		sent: 1<<60 + 7, cluster: "prod", node: "web1", addr: "10.0.0.1:7946", clusterID: "abcd", candidate: "web0"}
	key := testKey(t, "k1")
	pkt := encodeWith(t, m, key)
	f, r, ok := split(pkt)
	if !ok {
		t.Fatalf("split: %v", r)
	}
	if !f.authentic(newMAC(key), make([]byte, 0, macLen)) {
		t.Fatal("the packet's own MAC does not verify")
	}
	if f.authentic(newMAC(testKey(t, "k2")), make([]byte, 0, macLen)) {
		t.Fatal("the packet verifies under another key")
	}
	if got := f.message(); got != m {
		t.Errorf("decoded %+v, want %+v", got, m)
	}
}

func TestEncodeRefusesAFieldOver255Bytes(t *testing.T) {
	m := announcement(strings.Repeat("n", 256), 1, 1)
	if _, err := m.encode(nil, newMAC(testKey(t, "k1"))); !errors.Is(err, errFieldTooLong) {
		t.Errorf("encode of a 256-byte node name: %v, want errFieldTooLong", err)
	}
	m = announcement(strings.Repeat("n", 255), 1, 1)
	m.cluster, m.addr, m.clusterID, m.candidate = strings.Repeat("c", 255), strings.Repeat("a", 255),
		strings.Repeat("i", 255), strings.Repeat("d", 255)
	pkt, err := m.encode(nil, newMAC(testKey(t, "k1")))
	if err != nil || len(pkt) != MaxPacket {
		t.Errorf("the largest packet: %d bytes, %v; want MaxPacket (%d)", len(pkt), err, MaxPacket)
	}
}
