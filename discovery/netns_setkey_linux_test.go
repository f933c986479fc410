package discovery

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// A beacon moved to another key over real multicast, between three
// network namespaces: after SetKey it is heard by the new key's node
// only, and hears only it.
func TestABeaconGivenAnotherKeyOverRealMulticast(t *testing.T) {
	hosts := lan(t, 3)
	names, keys := []string{"a", "c", "b"}, []string{"k1", "k2", "k1"}
	runs := make([]*running, len(hosts))
	for i, h := range hosts {
		local := netip.MustParseAddr(fmt.Sprintf("10.231.0.%d", i+1))
		var conn Conn
		var err error
		inNetns(t, h, func() { conn, err = ListenMulticast(DefaultGroupAddr(), local) })
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = start(t, Config{ClusterName: "graft", NodeName: names[i], Addr: local.String() + ":7946",
			Key: testKey(t, keys[i]), Conn: conn, Interval: 100 * time.Millisecond, PeerTTL: 5 * time.Second})
	}
	old, other, moved := runs[0], runs[1], runs[2]
	other.SetState(true, "id2")
	waitFor(t, "b to hear a under k1", func() bool { _, ok := peerNamed(moved.Beacon, "a"); return ok })
	if err := moved.SetKey(testKey(t, "k2")); err != nil {
		t.Fatal(err)
	}
	moved.SetState(true, "id2")
	waitFor(t, "c to hear b as a member of its cluster", func() bool {
		p, ok := peerNamed(other.Beacon, "b")
		return ok && p.ClusterID == "id2"
	})
	refused := moved.Stats().Ignored["unauthenticated"]
	waitFor(t, "b to refuse more of a's packets", func() bool { return moved.Stats().Ignored["unauthenticated"] > refused+2 })
	if names := peerNames(moved.Beacon); !slices.Equal(names, []string{"c"}) {
		t.Errorf("b, moved to k2, hears %v over multicast; want c only", names)
	}
	// a, of k1, hears b no more: b goes quiet to it within PeerTTL.
	waitFor(t, "a to stop hearing b", func() bool { _, ok := peerNamed(old.Beacon, "b"); return !ok })
}
