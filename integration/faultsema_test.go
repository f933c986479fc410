package integration

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/internal/faultcheck"
)

// faultSemas are the semaphores the schedules' semaphore clients take,
// under the schedule's prefix: few, so that they contend.
var faultSemas = []struct {
	id    string
	count int64
}{{"one", 1}, {"two", 2}}

// semaRecorder collects the holds of one schedule's semaphore clients, as
// they saw them, in a recorder of its own (times as the key clients').
type semaRecorder struct {
	*recorder
	stop context.CancelFunc // ends the clients
}

// startSemaClients starts, on each host, a client that takes a slot of
// one of faultSemas (under prefix) through the host's API, holds it 100
// to 700 ms or until it is lost, and gives it back, until ctx ends.
// Client numbers start at first.
func startSemaClients(ctx context.Context, c *Cluster, clients map[*Host]*api.Client, prefix string, seed uint64, first int) *semaRecorder {
	ctx, stop := context.WithCancel(ctx)
	r := &semaRecorder{recorder: newRecorder(), stop: stop}
	for i, h := range c.Hosts {
		id, cl := first+i, clients[h]
		rng := rand.New(rand.NewPCG(seed, uint64(1000+id)))
		r.Clients.Go(func() {
			for ctx.Err() == nil {
				s := faultSemas[rng.IntN(len(faultSemas))]
				r.holdOnce(ctx, cl, id, prefix+s.id, s.count, time.Duration(100+rng.IntN(600))*time.Millisecond)
				pause(ctx, time.Duration(5+rng.IntN(20))*time.Millisecond)
			}
		})
	}
	return r
}

// holdOnce takes a slot of sema through c, holds it for d or until it is
// lost, and records the hold. A wait that times out, or a request that
// fails, took no slot the client could use: the agent gives up the place
// in the queue, or the slot, as the request closes.
func (r *semaRecorder) holdOnce(ctx context.Context, c *api.Client, id int, sema string, count int64, d time.Duration) {
	actx, cancel := context.WithTimeout(ctx, faultOpTimeout)
	call := r.Now()
	slot, err := c.Acquire(actx, sema, count)
	cancel()
	if err != nil {
		return
	}
	h := faultcheck.Hold{Client: id, Sema: sema, Count: count, Token: slot.Token(), Call: call, From: r.Now()}
	t := time.NewTimer(d)
	select {
	case <-slot.Lost(): // the agent said so, died (the stream broke) or fell silent
		h.Lost = true
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	h.To = r.Now()
	r.AddHold(h)
	// Given back in any case; a release that fails is the agent's to
	// retry, or the cluster's to free when it declares the host dead.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), faultOpTimeout)
	_ = slot.Release(rctx)
	rcancel()
}

// check ends the clients, waits for them, and checks the holds: never
// more holders of a semaphore than its count, as the clients saw them,
// nor a token out of order. It logs how many there were.
func (r *semaRecorder) check(t *testing.T, replay string) {
	t.Helper()
	r.stop()
	r.Clients.Wait()
	holds := r.History().Holds
	lost := 0
	for _, h := range holds {
		if h.Lost {
			lost++
		}
	}
	t.Logf("%s: %d semaphore holds (%d lost)", replay, len(holds), lost)
	// Few holds are normal: a killed holder's slot stays taken until the
	// cluster declares its host dead or its restarted agent gives it back.
	if len(holds) == 0 {
		t.Errorf("%s: the semaphore clients held nothing", replay)
	}
	if err := faultcheck.Semaphores(holds); err != nil {
		t.Errorf("%s: %v", replay, err)
	}
}
