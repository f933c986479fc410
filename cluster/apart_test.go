package cluster_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// startAlone starts a slot that bootstraps a cluster of its own and waits
// until it knows its cluster's ID.
func startAlone(t *testing.T, f *clustertest.Fleet, s *clustertest.Slot) *cluster.Server {
	t.Helper()
	srv := f.Start(s, nil)
	eventually(t, time.Minute, s.ID+"'s cluster ID", func() bool { return srv.ClusterID() != "" })
	return srv
}

// Issue 9, item 7: a node started alone could never join another
// cluster, and its seeds' refusal ("bootstrapped apart") said nothing of
// what to do. Join says the seeds belong to another cluster, and the join
// loop of a node that never had a peer hands it to its owner, which sets
// the node's own cluster aside.
func TestSeedsOfAnotherClusterAreHandedOverForANodeThatNeverHadAPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		theirs := startAlone(t, f, s0)
		mine := startAlone(t, f, s1)
		if !mine.NeverHadPeer() {
			t.Fatal("a node started alone says it had a peer")
		}
		_, err := mine.Join([]string{s0.GossipAddr()})
		var other *cluster.OtherClusterError
		if !errors.As(err, &other) || !errors.Is(err, cluster.ErrOtherCluster) ||
			other.ClusterID != theirs.ClusterID() || other.Local != mine.ClusterID() {
			t.Fatalf("join of another cluster: %v, want an OtherClusterError naming both clusters", err)
		}

		f.Kill(s1)
		handed := make(chan *cluster.OtherClusterError, 1)
		f.Restart(s1, func(c *cluster.ServerConfig) {
			c.Join = []string{s0.GossipAddr()}
			c.OnOtherCluster = func(e *cluster.OtherClusterError) { handed <- e }
		})
		select {
		case e := <-handed:
			if e.ClusterID != theirs.ClusterID() {
				t.Errorf("handed over cluster %s, want %s", e.ClusterID, theirs.ClusterID())
			}
		case <-time.After(time.Minute):
			t.Fatal("the join loop did not hand the other cluster over")
		}
		if ms := theirs.Members(); len(ms) != 1 {
			t.Errorf("the other cluster let the node in: %+v", ms)
		}
	})
}

// A node that had peers is never handed over: its join loop stops and
// says what to do.
func TestSeedsOfAnotherClusterAreNotHandedOverForANodeThatHadPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		f := clustertest.NewFleet(t, 3, &cfg)
		s0, s1, s2 := f.Slots[0], f.Slots[1], f.Slots[2]
		startAlone(t, f, s0)
		first := startAlone(t, f, s1)
		f.Start(s2, joinTo(s1))
		eventually(t, time.Minute, "two servers", func() bool {
			v, nv := roles(t, first)
			return len(v)+len(nv) == 2
		})
		if first.NeverHadPeer() {
			t.Fatal("a node with a peer says it never had one")
		}
		// Its peer down too, so that it meets the seeds rather than
		// finding its peer first (and stopping its join loop).
		f.Kill(s2)
		f.Kill(s1)
		handed := make(chan struct{}, 1)
		srv := f.Restart(s1, func(c *cluster.ServerConfig) {
			c.Join = []string{s0.GossipAddr()}
			c.OnOtherCluster = func(*cluster.OtherClusterError) { handed <- struct{}{} }
		})
		time.Sleep(time.Minute) // on the bubble's clock
		select {
		case <-handed:
			t.Error("a node that had peers was handed over to be set aside")
		default:
		}
		if srv.NeverHadPeer() {
			t.Error("the restarted node forgot its peers")
		}
		// The refusal was seen, and the loop stopped saying why: a join
		// loop that never met the other cluster would not hand over either.
		said := tap.Matching(func(l logtest.Line) bool {
			return l.Attrs["node"] == s1.ID && strings.Contains(l.Msg, "can never join") &&
				strings.Contains(l.Msg, "no longer trying them")
		})
		if len(said) != 1 {
			t.Errorf("the node said %d times that it can never join the seeds' cluster and stops trying, want once", len(said))
		}
	})
}

// A node restarted on its state gossiped no cluster ID until raft had
// replayed its log, so for a moment it looked fresh, and a node of
// another cluster would merge with it and add it to its raft. It knows
// its cluster's ID as soon as it starts.
func TestARestartedNodeKnowsItsClusterIDAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 1, nil)
		s0 := f.Slots[0]
		id := startAlone(t, f, s0).ClusterID()
		f.Kill(s0)
		if got := f.Restart(s0, nil).ClusterID(); got != id {
			t.Errorf("right after a restart the node's cluster ID is %q, want %q", got, id)
		}
	})
}

// A node started alone joined a cluster whose first node had bootstrapped
// a moment before and did not know its cluster's ID yet: the two looked
// compatible, and the first node added the other, raft state and all, to
// its raft. Rings of two nodes that both started on state of their own
// merge only once both know their clusters' IDs, and then they do not.
func TestANodeWithStateIsNotMergedIntoAClusterTooNewToKnowItsID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		startAlone(t, f, s1)
		f.Kill(s1)
		theirs := f.Start(s0, nil) // bootstraps; its ID comes with its first leadership
		if theirs.ClusterID() != "" {
			t.Fatal("the new cluster knows its ID at once; the test needs it not to")
		}
		handed := make(chan *cluster.OtherClusterError, 1)
		f.Restart(s1, func(c *cluster.ServerConfig) {
			c.Join = []string{s0.GossipAddr()}
			c.OnOtherCluster = func(e *cluster.OtherClusterError) { handed <- e }
		})
		select {
		case e := <-handed:
			if e.ClusterID != theirs.ClusterID() {
				t.Errorf("handed over cluster %q, want %q", e.ClusterID, theirs.ClusterID())
			}
		case <-time.After(time.Minute):
			t.Error("the join loop did not find the other cluster")
		}
		if v, nv := roles(t, theirs); len(v)+len(nv) != 1 {
			t.Errorf("the new cluster added the other node: voters %v, non-voters %v", v, nv)
		}
	})
}

// Issue 9, item 7 (third review): which key a node's raft state was made
// under was not known once the node had adopted another, so the key of
// the cluster it then joined went where its own cluster was set aside.
// The state records the key of the server that made it, and keeps it
// under another key.
func TestARaftStateRecordsTheKeyItWasMadeUnder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first, adopted := newKey(t), newKey(t)
		cfg := cluster.TestServerConfig()
		cfg.Token = &first
		f := clustertest.NewFleet(t, 1, &cfg)
		s0 := f.Slots[0]
		if got := startAlone(t, f, s0).StateKeyFingerprint(); got != first.Fingerprint() {
			t.Fatalf("the new state records key %q, want %s", got, first.Fingerprint())
		}
		f.Kill(s0)
		back := f.Restart(s0, func(c *cluster.ServerConfig) { c.Token = &adopted })
		if got := back.StateKeyFingerprint(); got != first.Fingerprint() {
			t.Errorf("restarted under another key, the state records key %q, want the one it was made under, %s",
				got, first.Fingerprint())
		}
	})
}

func newKey(t *testing.T) clusterkey.Token {
	t.Helper()
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
