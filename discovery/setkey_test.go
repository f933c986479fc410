package discovery

import (
	"errors"
	"slices"
	"testing"
)

func peerNames(b *Beacon) []string {
	var names []string
	for _, p := range b.Peers() {
		names = append(names, p.Name)
	}
	return names
}

// Issue 13 (review): a node moved to another cluster (another key) kept
// announcing under the old key, so the new cluster's nodes never heard it
// and it went on following the old cluster's. After SetKey it hears and
// is heard by the new key's nodes only, forgets the old key's, and is no
// longer fresh.
func TestABeaconGivenAnotherKeyHearsAndIsHeardByThatKeysNodesOnly(t *testing.T) {
	h := &hub{}
	old := start(t, testConfig(t, h, "a"))
	cfg := testConfig(t, h, "c")
	cfg.Key = testKey(t, "k2")
	other := start(t, cfg)
	other.SetState(true, "id2") // c belongs to the cluster of k2
	moved := start(t, testConfig(t, h, "b"))
	waitFor(t, "b to hear a under k1", func() bool { _, ok := peerNamed(moved.Beacon, "a"); return ok })
	if _, ok := peerNamed(moved.Beacon, "c"); ok {
		t.Fatal("b, under k1, heard c, under k2")
	}

	if err := moved.SetKey(testKey(t, "k2")); err != nil {
		t.Fatal(err)
	}
	if _, ok := peerNamed(moved.Beacon, "a"); ok {
		t.Error("b still lists a, heard under its old key")
	}
	moved.SetState(true, "id2")
	waitFor(t, "c to hear b, of its cluster, under k2", func() bool {
		p, ok := peerNamed(other.Beacon, "b")
		return ok && p.Bootstrapped && p.ClusterID == "id2"
	})
	waitFor(t, "b to hear c under k2", func() bool { _, ok := peerNamed(moved.Beacon, "c"); return ok })
	// a goes on announcing under k1: b reads and refuses its packets.
	refused := moved.Stats().Ignored["unauthenticated"]
	waitFor(t, "b to refuse more of a's packets", func() bool { return moved.Stats().Ignored["unauthenticated"] > refused+2 })
	if names := peerNames(moved.Beacon); !slices.Equal(names, []string{"c"}) {
		t.Errorf("b, moved to k2, hears %v; want c only", names)
	}
	if d := moved.Decision(); d.Step != Member || !slices.Equal(d.Join, []string{"c:7946"}) {
		t.Errorf("b's decision after the move: %+v, want a member that joins c only", d)
	}
	// a, of k1, hears b no more: b goes quiet to it within PeerTTL.
	waitFor(t, "a to stop hearing b", func() bool { _, ok := peerNamed(old.Beacon, "b"); return !ok })

	// The same key again changes nothing: c is still heard.
	if err := moved.SetKey(testKey(t, "k2")); err != nil {
		t.Fatal(err)
	}
	if _, ok := peerNamed(moved.Beacon, "c"); !ok {
		t.Error("setting the same key again forgot c")
	}
}

func TestABeaconWithNoKeyTakesNone(t *testing.T) {
	cfg := testConfig(t, &hub{}, "l")
	cfg.Key = nil
	b := start(t, cfg)
	if err := b.SetKey(testKey(t, "k1")); !errors.Is(err, ErrNoKey) {
		t.Errorf("SetKey on a looking beacon: %v, want ErrNoKey", err)
	}
}
