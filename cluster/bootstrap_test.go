package cluster_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
)

// Issue 13 (forming): fresh nodes that decided to join a candidate that
// died before it bootstrapped waited for ever, started with seeds and so
// never alone. One of them, fresh and waiting in a ring of fresh nodes,
// bootstraps its running server: it leads a cluster of its own, and its
// reconciler adds the fresh node in its ring. A node that belongs to a
// cluster (added, started on raft state, or that bootstrapped already)
// refuses.
func TestAFreshWaitingServerBootstrapsOnceAndAddsTheFreshNodesOfItsRing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 3, nil)
		s0, s1, s2 := f.Slots[0], f.Slots[1], f.Slots[2]
		gone := func(c *cluster.ServerConfig) { c.Join = []string{"192.0.2.1:7946"} } // never answers (an address, not a name: no DNS lookup in the bubble)
		b := f.Start(s1, gone)
		j := f.Start(s2, gone)
		if _, err := j.Join([]string{s1.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if b.ClusterID() != "" || b.Node().LastIndex() != 0 {
			t.Fatalf("a server started with seeds bootstrapped on its own: cluster %q, last index %d",
				b.ClusterID(), b.Node().LastIndex())
		}
		if err := b.BootstrapFresh(); err != nil {
			t.Fatalf("BootstrapFresh of a fresh waiting server: %v", err)
		}
		eventually(t, time.Minute, "the fresh node of its ring added to its cluster", func() bool {
			return b.ClusterID() != "" && j.ClusterID() == b.ClusterID()
		})
		if !b.Node().IsLeader() {
			t.Errorf("the node that bootstrapped does not lead its cluster")
		}
		for name, srv := range map[string]*cluster.Server{"the bootstrapper, again": b, "the added node": j} {
			if err := srv.BootstrapFresh(); !errors.Is(err, cluster.ErrNotFresh) {
				t.Errorf("BootstrapFresh of %s: %v, want ErrNotFresh", name, err)
			}
		}
		// A node that started on raft state refuses too, before raft is asked.
		startAlone(t, f, s0)
		f.Kill(s0)
		restarted := f.Restart(s0, gone)
		if err := restarted.BootstrapFresh(); !errors.Is(err, cluster.ErrNotFresh) {
			t.Errorf("BootstrapFresh of a node restarted on raft state: %v, want ErrNotFresh", err)
		}
	})
}
