package raftnode_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// linearizeAll makes every running member apply everything committed.
func linearizeAll(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	for _, m := range c.Members {
		if n := m.Node(); n != nil {
			if err := n.Linearize(t.Context()); err != nil {
				t.Fatalf("%s: Linearize: %v", m.ID, err)
			}
		}
	}
}

// A node restarted into a cluster that has no quorum holds only its
// snapshot (raft replays the log beyond it only once a leader says what is
// committed), so it is not caught up, however long it waits; once a quorum
// is back it applies its log and is caught up, and stays so when the
// quorum goes again.
func TestCaughtUpOnlyOnceRestartedNodeAppliedItsLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		l := leader(t, c)
		for i := range 100 {
			apply(t, l, fmt.Sprintf("k%d", i), "x")
		}
		<-time.After(time.Second) // fake time: let every member snapshot
		apply(t, l, "last", "y")  // in the logs, beyond the snapshots
		linearizeAll(t, c)
		for _, m := range c.Members {
			if !m.Node().CaughtUp() {
				t.Fatalf("%s: not caught up, though it started with no log", m.ID)
			}
		}
		for _, m := range c.Members {
			c.Kill(m)
		}
		m := c.Members[0]
		c.Restart(m)
		<-time.After(10 * time.Second) // fake time: elections fail, nothing is applied
		if _, ok := m.FSM().Get("last"); ok {
			t.Fatal("the restarted node applied its log without a quorum: the test shows nothing")
		}
		if m.Node().CaughtUp() {
			t.Fatal("CaughtUp with only the snapshot applied, in a cluster without quorum")
		}
		c.Restart(c.Members[1])
		eventually(t, time.Minute, "the restarted node caught up", m.Node().CaughtUp)
		if _, ok := m.FSM().Get("last"); !ok {
			t.Error("caught up without the last write of its log")
		}
		c.Kill(c.Members[1])
		<-time.After(10 * time.Second)
		if !m.Node().CaughtUp() {
			t.Error("no longer caught up after losing the quorum again")
		}
	})
}

// A log that ends with raft's own entries (the no-op of an election, the
// barriers of linearizable reads), which raft never hands the FSM, still
// counts as applied once raft has dispatched them.
func TestCaughtUpWhenTheLogEndsWithRaftsOwnEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		apply(t, leader(t, c), "k", "v")
		restartAll := func() {
			for _, m := range c.Members {
				c.Kill(m)
			}
			for _, m := range c.Members {
				c.Restart(m)
			}
			leader(t, c)
		}
		// After a restart the new leader appends its no-op and Linearize its
		// barrier: no command follows them.
		restartAll()
		linearizeAll(t, c)
		for _, m := range c.Members {
			r := raftnode.RaftOf(m.Node())
			eventually(t, time.Minute, m.ID+" applied its whole log", func() bool { return r.AppliedIndex() == r.LastIndex() })
			if m.FSM().Applied() >= r.LastIndex() {
				t.Fatalf("%s: the FSM applied %d, the log ends at %d: no raft entries at its end", m.ID, m.FSM().Applied(), r.LastIndex())
			}
		}
		restartAll()
		for _, m := range c.Members {
			eventually(t, time.Minute, m.ID+" caught up", m.Node().CaughtUp)
		}
	})
}

// A leader cut off with entries it could not commit, then restarted after
// the others elected a leader that wrote nothing but its no-op, has those
// entries replaced and its log shortened: it is caught up once it has
// applied the new leader's log, with no write needed to pass its old end.
func TestCaughtUpWhenUncommittedEntriesWereReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		old := leader(t, c)
		apply(t, old, "k", "v")
		linearizeAll(t, c)
		c.Partition(old)
		r := raftnode.RaftOf(old.Node())
		before := r.LastIndex()
		for i := range 3 {
			data, err := fsm.EncodeBatch(put(fmt.Sprintf("lost%d", i), "x"))
			if err != nil {
				t.Fatal(err)
			}
			r.Apply(data, 0) // never committed: the leader is cut off
		}
		synctest.Wait()
		if got := r.LastIndex(); got != before+3 {
			t.Fatalf("the cut-off leader's log ends at %d, want %d", got, before+3)
		}
		c.Kill(old)
		nl := leader(t, c)
		c.Heal()
		c.Restart(old)
		eventually(t, time.Minute, "the old leader caught up", old.Node().CaughtUp)
		if got, lim := raftnode.RaftOf(old.Node()).LastIndex(), before+3; got >= lim {
			t.Fatalf("the old leader's log ends at %d, not before %d: its entries were not replaced", got, lim)
		}
		if _, ok := old.FSM().Get("lost0"); ok || nl.FSM().Rev() != old.FSM().Rev() {
			t.Errorf("after catching up: revision %d, the leader's %d; lost0 present: %t", old.FSM().Rev(), nl.FSM().Rev(), ok)
		}
	})
}
