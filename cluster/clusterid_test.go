package cluster_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// inRaftAndRing reports whether srv's raft configuration holds name and
// its ring shows it alive.
func inRaftAndRing(t *testing.T, srv *cluster.Server, name string) bool {
	t.Helper()
	v, nv := roles(t, srv)
	if !slices.Contains(v, name) && !slices.Contains(nv, name) {
		return false
	}
	for _, m := range srv.Members() {
		if m.Name == name && m.Gossip == "alive" {
			return true
		}
	}
	return false
}

// Issue 9, item 7 (second review): the cluster ID was kept beside raft's
// state only on a reconcile tick (or a gossip event), so a node killed
// after it had taken its cluster's log, and before that, kept none. It is
// kept as soon as the state machine applies it: here the joining node's
// reconciler never ticks.
func TestAJoinedNodeKeepsItsClusterIDAsSoonAsItAppliesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := startAlone(t, f, s0)
		f.Start(s1, func(c *cluster.ServerConfig) {
			c.Join = []string{s0.GossipAddr()}
			c.ReconcileInterval = time.Hour
		})
		id := first.ClusterID()
		eventually(t, time.Minute, "s1's state machine holding the cluster ID", func() bool {
			kv, ok := s1.FSM().Get("_graft/cluster-id")
			return ok && string(kv.Value) == id
		})
		eventually(t, time.Second, "s1 keeping the cluster ID beside its raft state", func() bool {
			return s1.StoredClusterID() == id
		})
	})
}

// Issue 9, item 7 (second review): a node killed after it had taken its
// cluster's log but before it kept the cluster ID restarted with raft
// state and no known ID; removed from raft meanwhile (down past the
// grace, a leave, a new address), it was refused by its own cluster's
// ring, and refused it, for good. It reads the ID from its own log at
// start, and is added back.
func TestANodeKilledBeforeItKeptItsClusterIDIsAddedBackAfterItWasRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := startAlone(t, f, s0)
		f.Start(s1, joinTo(s0))
		eventually(t, time.Minute, "s1 in the cluster", func() bool {
			return inRaftAndRing(t, first, s1.ID) && s1.StoredClusterID() == first.ClusterID()
		})
		f.Kill(s1)
		if err := s1.ForgetClusterID(); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "s1 removed from raft", func() bool {
			v, nv := roles(t, first)
			return !slices.Contains(v, s1.ID) && !slices.Contains(nv, s1.ID)
		})
		// Until the removal is committed the leader still sends to s1.
		time.Sleep(5 * time.Second)
		if err := s1.Peers().Save([]string{s0.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		back := f.Restart(s1, nil)
		if got := back.ClusterID(); got != first.ClusterID() {
			t.Errorf("right after its restart s1 knows cluster ID %q, want %q, read from its log", got, first.ClusterID())
		}
		eventually(t, time.Minute, "s1 added back", func() bool { return inRaftAndRing(t, first, s1.ID) })
		// Only the ID it applies is kept: being in the configuration again
		// comes before s1 has applied the entry that holds the ID.
		eventually(t, time.Minute, "the cluster ID read from the log kept once applied", func() bool {
			return s1.StoredClusterID() == first.ClusterID()
		})
	})
}

// Issue 9, item 7 (third review): a node that found no cluster ID beside
// its raft state kept the one it read from its raft log at once, though
// the entry that wrote it may never have been committed (a leader that
// lost its seat before it could). The ID read from the log is the
// node's until it applies its log; only the ID it applies is kept.
func TestAClusterIDReadFromTheRaftLogIsKeptOnlyOnceApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := startAlone(t, f, s0)
		id := first.ClusterID()
		f.Start(s1, joinTo(s0))
		eventually(t, time.Minute, "s1 in the cluster", func() bool {
			return inRaftAndRing(t, first, s1.ID) && s1.StoredClusterID() == id
		})
		f.Kill(s1)
		f.Kill(s0)
		if err := s1.ForgetClusterID(); err != nil {
			t.Fatal(err)
		}
		back := f.Restart(s1, nil) // s0 down: s1 applies nothing
		if got := back.ClusterID(); got != id {
			t.Fatalf("right after its restart s1 knows cluster ID %q, want %q, read from its log", got, id)
		}
		time.Sleep(time.Minute) // on the bubble's clock
		if got := s1.StoredClusterID(); got != "" {
			t.Errorf("s1 keeps the cluster ID %q it read from its log before it applied it", got)
		}
		f.Restart(s0, nil)
		eventually(t, time.Minute, "s1 keeping the cluster ID once applied", func() bool {
			return s1.StoredClusterID() == id
		})
	})
}

// Issue 9, item 7 (third review): a node that kept a cluster ID the
// state machine then contradicted (one an older graft read from an entry
// of its log never committed) kept it for good: the ID was kept again
// only while none was. The ID the state machine applies replaces it.
func TestAWrongClusterIDKeptBesideTheRaftStateIsReplacedOnceApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 1, nil)
		s0 := f.Slots[0]
		id := startAlone(t, f, s0).ClusterID()
		f.Kill(s0)
		if err := s0.KeepClusterID("0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
		back := f.Restart(s0, nil)
		eventually(t, time.Minute, "s0 keeping the cluster ID its state machine applied", func() bool {
			return s0.StoredClusterID() == id && back.ClusterID() == id
		})
	})
}

// A fresh node killed as the leader first reached it keeps raft's term,
// and nothing else: raft counts that as state. It held no log another
// cluster could take for its own, so it is not kept out as a node on
// state it cannot name: it is added back as a fresh node.
func TestANodeKilledBeforeItTookAnyLogIsAddedAsAFreshNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := startAlone(t, f, s0)
		if err := s1.SetTerm(first.Node().Term()); err != nil {
			t.Fatal(err)
		}
		if err := s1.Peers().Save([]string{s0.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		srv := f.Start(s1, nil)
		if !srv.Node().HasState() {
			t.Fatal("raft does not count a term alone as state: the test needs it to")
		}
		eventually(t, time.Minute, "s1 in the cluster", func() bool {
			return inRaftAndRing(t, first, s1.ID) && srv.ClusterID() == first.ClusterID()
		})
	})
}

// Issue 9, item 7 (second review): a node on raft state that does not
// name its cluster, started without --join, waited for its cluster's ID
// in silence, though the README says it logs why after 10 s. It says why,
// once.
func TestANodeWaitingForItsClusterIDWithoutJoinSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newStateWithoutID(t)
		x.restartB0(t, nil)
		time.Sleep(time.Minute) // on the bubble's clock
		said := x.tap.Matching(func(l logtest.Line) bool {
			return l.Attrs["node"] == x.b0.ID && l.Msg == "joining no other node until this node knows its cluster's ID" &&
				l.Level == slog.LevelError && strings.Contains(l.Attrs["err"], "Start enough of its cluster's servers")
		})
		if len(said) != 1 {
			t.Errorf("B's node said %d times why it joins nobody, want once", len(said))
		}
		for _, l := range x.tap.Matching(func(l logtest.Line) bool { return l.Attrs["node"] == x.b0.ID }) {
			if strings.Contains(l.Text, "did not keep it") {
				t.Errorf("B's node blames an older graft: %s", l.Text)
			}
		}
	})
}
