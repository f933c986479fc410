package faultsuite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/internal/faultcheck"
	"github.com/graftcm/graft/world"
)

// The clients' key set and semaphores: few, so that they contend.
var (
	kvKeys = []string{"k/0", "k/1", "k/2"}
	semas  = []struct {
		id    string
		count int64
	}{{"one", 1}, {"two", 2}}
)

// opTimeout bounds each client call, on the fake clock.
const opTimeout = time.Second

// recorder is the schedule's history, with the clients and watchers
// that record it: its times are a counter bumped at every call and
// return, and a call that reached no leader was never applied.
type recorder struct{ faultcheck.Recorder }

func newRecorder() *recorder {
	return &recorder{faultcheck.Recorder{NeverApplied: neverApplied}}
}

// neverApplied reports whether a call's error says it was never applied:
// no leader was found, or none was reached. Any other error leaves the
// outcome unknown.
func neverApplied(err error) bool {
	return errors.Is(err, raftnode.ErrNoLeader) || errors.Is(err, raftnode.ErrLeaderUnreachable)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// worldOf waits for n's World while n is down; nil once ctx ends.
func worldOf(ctx context.Context, n *node) *world.World {
	for ctx.Err() == nil {
		if w := n.current(); w != nil {
			return w
		}
		sleep(ctx, 20*time.Millisecond)
	}
	return nil
}

// kvClient puts, gets, deletes and swaps the keys through n until ctx
// ends, 10 to 50 ms of fake time apart. Values are unique.
func (r *recorder) kvClient(ctx context.Context, id int, n *node, rng *rand.Rand) {
	r.Clients.Go(func() {
		last := map[string]string{} // what this client last saw of each key ("": absent)
		for seq := 0; ; seq++ {
			w := worldOf(ctx, n)
			if w == nil {
				return
			}
			key := kvKeys[rng.IntN(len(kvKeys))]
			value := fmt.Sprintf("c%d.%d", id, seq)
			r.kvOp(ctx, w, id, rng.IntN(8), key, value, last)
			sleep(ctx, time.Duration(10+rng.IntN(40))*time.Millisecond)
		}
	})
}

// kvOp makes one call: 0-2 a put, 3-4 a get, 5 a delete, 6-7 a CAS.
func (r *recorder) kvOp(ctx context.Context, w *world.World, id, pick int, key, value string, last map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	op := faultcheck.KVOp{Client: id, Key: key, Call: r.Now()}
	var wr *faultcheck.Write
	var err error
	switch {
	case pick <= 2:
		op.Kind, op.Value = faultcheck.Put, value
		var rev uint64
		rev, err = w.Put(ctx, key, []byte(value))
		wr = &faultcheck.Write{Key: key, Value: value, Acked: true, Rev: rev}
		if err == nil {
			last[key] = value
		}
	case pick <= 4:
		op.Kind = faultcheck.Get
		var kv fsm.KV
		kv, op.Found, err = w.Get(ctx, key, world.Linearizable())
		op.Got = string(kv.Value)
		if err == nil {
			last[key] = op.Got
		}
	case pick == 5:
		op.Kind = faultcheck.Delete
		var rev uint64
		rev, err = w.Delete(ctx, key)
		wr = &faultcheck.Write{Key: key, Deleted: true, Acked: true, Rev: rev}
		if err == nil {
			last[key] = ""
		}
	default:
		op.Kind, op.Value, op.Expect = faultcheck.CAS, value, last[key]
		op.ExpectAbsent = op.Expect == ""
		var old []byte
		if !op.ExpectAbsent {
			old = []byte(op.Expect)
		}
		var rev uint64
		op.Swapped, rev, err = w.CompareAndSwap(ctx, key, old, []byte(value))
		wr = &faultcheck.Write{Key: key, Value: value, Acked: true, Rev: rev}
		if err == nil && !op.Swapped {
			wr = nil // acknowledged as not applied
		}
		if err == nil && op.Swapped {
			last[key] = value
		}
	}
	op.Return = r.Now()
	r.AddOp(op, wr, err)
}

// semaClient takes a slot of one of the semaphores through n, holds it
// 100 to 700 ms (or until it is lost: longer than the Worlds' lease
// timeout, so that a cut holder finds out) and gives it back, until ctx
// ends.
func (r *recorder) semaClient(ctx context.Context, id int, n *node, rng *rand.Rand) {
	r.Clients.Go(func() {
		for {
			w := worldOf(ctx, n)
			if w == nil {
				return
			}
			s := semas[rng.IntN(len(semas))]
			r.holdOnce(ctx, w, id, s.id, s.count, time.Duration(100+rng.IntN(600))*time.Millisecond)
			sleep(ctx, time.Duration(5+rng.IntN(20))*time.Millisecond)
		}
	})
}

func (r *recorder) holdOnce(ctx context.Context, w *world.World, id int, sema string, count int64, d time.Duration) {
	actx, cancel := context.WithTimeout(ctx, opTimeout)
	call := r.Now()
	l, err := w.Acquire(actx, sema, count)
	cancel()
	if err != nil {
		return // not held, or given up on
	}
	h := faultcheck.Hold{Client: id, Sema: sema, Count: count, Token: l.Token(), Call: call, From: r.Now()}
	t := time.NewTimer(d)
	select {
	case <-l.Lost():
		h.Lost = true
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	h.To = r.Now()
	r.AddHold(h)
	// Always given back, so that the lease's goroutine ends; a release
	// that fails is left to the cluster.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	_ = l.Release(rctx)
	rcancel()
}

// watch records what a watch of the clients' keys through w delivers,
// from revision from, until ctx ends, in the log it returns.
func (r *recorder) watch(ctx context.Context, w *world.World, name string, from uint64) *faultcheck.WatchLog {
	log := r.NewWatch(name, "k/", from)
	evs := w.Watch(ctx, "k/", from)
	r.Watchers.Go(func() {
		for ev := range evs {
			d := faultcheck.Delivery{Rev: ev.Rev, Resync: ev.Resync}
			for _, e := range ev.Events {
				d.Changes = append(d.Changes, change(e))
			}
			if ev.Resync {
				d.State = map[string]faultcheck.KV{}
				for _, kv := range ev.State {
					d.State[kv.Key] = faultcheck.KV{Value: string(kv.Value), ModRev: kv.ModRev}
				}
			}
			r.Deliver(log, d)
		}
	})
	return log
}
