package world_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// A process that crashed while it held a slot, or waited for one, and was
// restarted before the cluster declared its host dead left holders nobody
// releases: the restarted process's World gives them back, and leaves its
// own slots and other hosts' alone.
func TestRestartedProcessReleasesItsPredecessorsSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worlds(t, 2)
		ctx := t.Context()
		// node0's first process holds a slot of db and waits for another:
		// it crashed, so nothing releases or withdraws them.
		for i := range 2 {
			cmd := fsm.Command{Op: fsm.OpSemaAcquire, Sema: "db", Count: 1, Node: "node0",
				Holder: fmt.Sprintf("node0/0123456789ab/%d", i+1)}
			if _, err := c.Members[1].Node().Apply(ctx, []fsm.Command{cmd}); err != nil {
				t.Fatal(err)
			}
		}
		other, err := ws[1].Acquire(ctx, "other", 1) // another host's slot
		if err != nil {
			t.Fatal(err)
		}
		defer other.Release(context.WithoutCancel(ctx))
		restarted, err := world.New(c.Members[0].Node(), "node0", nil)
		if err != nil {
			t.Fatal(err)
		}
		mine, err := restarted.Acquire(ctx, "own", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer mine.Release(context.WithoutCancel(ctx))
		if n, err := restarted.ReleaseStale(ctx); err != nil || n != 2 {
			t.Fatalf("ReleaseStale: %d, %v; want the crashed process's slot and queue place", n, err)
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		l, err := ws[1].Acquire(actx, "db", 1)
		if err != nil {
			t.Fatalf("a slot the crashed process held: %v, want it released", err)
		}
		for _, l := range []*world.Lease{l, mine, other} {
			select {
			case <-l.Lost():
				t.Errorf("slot %d lost", l.Token())
			default:
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A host cut off from the cluster while it waits for a slot cannot
// withdraw from the queue when its caller gives up: the queue place used
// to stay, be granted later to nobody, and keep the slot from every host
// until this one was declared dead. Orphaned now says a give-back failed,
// and ReleaseStale, once the cluster is back, gives the place back.
func TestWithdrawalThatFailedWhileCutOffIsGivenBackLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worlds(t, 3)
		ctx := t.Context()
		leader, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var w, other *world.World
		var cut *clustertest.Member
		for i, m := range c.Members {
			if m == leader {
				other = ws[i]
			} else if w == nil {
				w, cut = ws[i], m
			}
		}
		held, err := other.Acquire(ctx, "db", 1)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		waited := make(chan error, 1)
		go func() {
			_, err := w.Acquire(wctx, "db", 1)
			waited <- err
		}()
		waitUntil(t, func() bool { return queued(c.Members[0], "db", cut.ID) })
		c.Partition(cut)
		cancel() // the caller gives up; the withdrawal cannot reach the cluster
		if err := <-waited; err == nil {
			t.Fatal("the wait ended with a slot")
		}
		select {
		case <-w.Orphaned():
		default:
			t.Fatal("Orphaned did not say the withdrawal failed")
		}
		c.Heal()
		if !queued(leader, "db", cut.ID) {
			t.Fatal("the queue place is gone by itself: the test shows nothing")
		}
		if n, err := w.ReleaseStale(ctx); err != nil || n != 1 {
			t.Fatalf("ReleaseStale: %d, %v; want the queue place given back", n, err)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithTimeout(ctx, time.Minute)
		defer acancel()
		l, err := other.Acquire(actx, "db", 1)
		if err != nil {
			t.Fatalf("the slot after the holder released it: %v; want it free, not granted to nobody", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// queued reports whether node holds or waits for a slot of id, in m's copy.
func queued(m *clustertest.Member, id, node string) bool {
	st, _ := m.FSM().Sema(id)
	for _, s := range append(st.Holders, st.Waiters...) {
		if s.Node == node {
			return true
		}
	}
	return false
}

// waitUntil lets fake time pass until cond holds, failing after a minute.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); !cond(); <-time.After(10 * time.Millisecond) {
		if time.Since(t0) > time.Minute {
			t.Fatal("not within a minute")
		}
	}
}
