package main

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/graftcm/graft/api"
)

// A join restarts the node's cluster side, and with it the local API's
// server. The socket used to go with it for a moment, and a client that
// came then (a second `graft join`, a `graft status`) failed with "no
// graft agent answers" though the agent ran. Now the socket stays open
// across the restart and the client is answered by the next side.
func TestAPIAnswersThroughoutARestartOfTheClusterSide(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	b := startNode(t, "b", "--token", key)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var calls, refused atomic.Int64
	var lastErr atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			c, err := api.NewClient(filepath.Join(b.data, apiSocket))
			if err == nil {
				_, err = c.Status(ctx)
				c.Close()
			}
			calls.Add(1)
			if errors.Is(err, api.ErrNoAgent) && ctx.Err() == nil {
				refused.Add(1)
				lastErr.Store(err)
			}
		}
	}()
	join := startAgent(t, "join", "--data-dir", b.data, gossip)
	if code := join.exitCode(2 * clusterWait); code != 0 {
		t.Fatalf("join: exit %d: %s", code, join.output())
	}
	inCluster(t, a, "b", b.data)
	stop()
	<-done
	// A call the old side's server took just as it stopped can still end
	// with EOF (about 1 in 100 calls made during a restart): net/http
	// drops a request it reads once Shutdown has begun. Not pinned here:
	// it needs one http.Server for the agent's run, dispatching to the
	// current side.
	if n := refused.Load(); n > 0 {
		err, _ := lastErr.Load().(error)
		t.Errorf("%d of %d status calls during the join found no agent, the last with: %v", n, calls.Load(), err)
	}
}
