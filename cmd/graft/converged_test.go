package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

// A host cut off from the cluster's leader reads an old copy of the
// converged states: --cluster-converged must not take that copy's "true"
// for a host that has since stopped being converged (as after a restart,
// before the node hears from a leader), and exits only once the states it
// reads are the cluster's.
func TestClusterConvergedDoesNotExitOnAStaleCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worldtest.New(t, 3)
		ctx := t.Context()
		var members []cluster.MemberInfo
		for _, m := range c.Members {
			members = append(members, cluster.MemberInfo{Name: m.ID, Gossip: "alive"})
		}
		set := func(w *world.World, v string) {
			t.Helper()
			if err := w.SetHostValue(ctx, convergedNS, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		for _, w := range ws {
			set(w, "true")
		}
		stale := c.Members[2]
		worldtest.WaitRev(stale, ws[0].Rev())
		c.Partition(stale)
		set(ws[1], "false") // the stale copy still says true

		ref := newWorldRef()
		ref.set(ws[2], func() []cluster.MemberInfo { return members })
		stopped := make(chan struct{})
		cc := newClusterConvergence(ref, sync.OnceFunc(func() { close(stopped) }), slog.New(slog.DiscardHandler))
		cc.set(engine.Status{Converged: true})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cc.run(rctx) }()
		time.Sleep(30 * time.Second)
		select {
		case <-stopped:
			t.Fatal("exited on the stale copy's converged states")
		default:
		}
		c.Heal()
		set(ws[1], "true")
		select {
		case <-stopped:
		case <-time.After(time.Minute): // on the bubble's clock
			t.Fatal("did not exit once every host was converged")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
