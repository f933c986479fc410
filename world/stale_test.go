package world_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

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
