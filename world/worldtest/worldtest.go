// Package worldtest starts Worlds on an in-memory cluster, for the tests of
// the packages that use the World.
package worldtest

import (
	"context"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/world"
)

// New starts a cluster of n in-memory nodes (see clustertest.New; inside a
// synctest bubble its time is fake), waits for a leader, and returns the
// cluster and a World per node, named after its node (node0, node1...).
func New(t testing.TB, n int, opts ...clustertest.Option) (*clustertest.Cluster, []*world.World) {
	t.Helper()
	c := clustertest.New(t, n, opts...)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	ws := make([]*world.World, 0, n)
	for _, m := range c.Members {
		w, err := world.New(m.Node(), m.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return c, ws
}

// WaitRev returns once m's copy of the state has reached revision rev,
// waking on each change of it rather than polling.
func WaitRev(m *clustertest.Member, rev uint64) {
	f := m.FSM()
	for {
		changed := f.Changed()
		if f.Rev() >= rev {
			return
		}
		<-changed
	}
}
