package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	// A call the old side's server took just as it stopped is pinned by
	// TestCallsAcrossASideRestartAreNeverDroppedUnanswered.
	if n := refused.Load(); n > 0 {
		err, _ := lastErr.Load().(error)
		t.Errorf("%d of %d status calls during the join found no agent, the last with: %v", n, calls.Load(), err)
	}
}

// restartSide stops the agent's cluster side and starts it again on the
// same data dir and key, as a move does (without the move), and waits
// for the new side's World to serve.
func restartSide(t *testing.T, p *inProcess) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.side
	old.stop()
	p.side = nil
	side, err := p.startSide(old.key, nil)
	if err != nil {
		t.Fatalf("restarting the cluster side: %v", err)
	}
	p.side = side
}

// A side restart (a join, a move) stopped the old side's HTTP server
// while the next side's was not up: net/http drops a request it reads
// once its Shutdown has begun, closing the connection unanswered, so
// about 1 call in 100 made during a restart failed with EOF (the cause of
// the EOF TestAPIAnswersThroughoutARestartOfTheClusterSide left aside).
// Calls made in a loop across side restarts now all get an answer, or at
// worst a 503 the client can retry, never a connection closed unanswered.
func TestCallsAcrossASideRestartAreNeverDroppedUnanswered(t *testing.T) {
	p := startInProcess(t, "a", nil)
	sock := filepath.Join(p.data, apiSocket)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var calls, answered atomic.Int64
	answers := make(chan struct{}, 64) // a token per answered call, dropped when full
	var mu sync.Mutex
	var dropped []error
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				// A new client per call: a new connection, as each graft
				// command makes (net/http's client resends a GET on a
				// reused connection closed unanswered, hiding the drop).
				c, err := api.NewClient(sock)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = c.Status(ctx)
				c.Close()
				var apiErr *api.Error
				switch {
				case ctx.Err() != nil:
					return
				case err == nil:
					answered.Add(1)
					select {
					case answers <- struct{}{}:
					default:
					}
				case errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
				default:
					mu.Lock()
					dropped = append(dropped, err)
					mu.Unlock()
				}
				calls.Add(1)
			}
		})
	}
	// Before the fix 10 restarts under these calls dropped about 5 of
	// some 250 (4 runs out of 4); bounded in time on a loaded machine.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	restarts := 0
restarting:
	for ; restarts < 10; restarts++ {
		restartSide(t, p)
		// Calls reach the new side before the next restart: 20 answers
		// after the tokens of earlier ones are drained.
		for len(answers) > 0 {
			<-answers
		}
		for range 20 {
			select {
			case <-answers:
			case <-deadline.C:
				break restarting
			}
		}
	}
	stop()
	wg.Wait()
	t.Logf("%d restarts, %d calls, %d answered", restarts, calls.Load(), answered.Load())
	if len(dropped) > 0 {
		t.Errorf("%d of %d status calls across %d side restarts failed unanswered, the first with: %v",
			len(dropped), calls.Load(), restarts, dropped[0])
	}
}
