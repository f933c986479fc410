package faultsuite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// recorder collects what the clients and watchers saw. Times are a
// counter bumped at every call and return: an operation that returned
// before another was called has the smaller times.
type recorder struct {
	clock    atomic.Int64
	clients  sync.WaitGroup
	watchers sync.WaitGroup

	mu      sync.Mutex
	ops     []faultcheck.KVOp
	writes  []faultcheck.Write
	holds   []faultcheck.Hold
	watches []*faultcheck.WatchLog
	failed  int // operations known not to have applied
}

func (r *recorder) now() int64 { return r.clock.Add(1) }

// neverApplied reports whether a call's error says it was never applied:
// no leader was found, or none was reached. Any other error leaves the
// outcome unknown.
func neverApplied(err error) bool {
	return errors.Is(err, raftnode.ErrNoLeader) || errors.Is(err, raftnode.ErrLeaderUnreachable)
}

func (r *recorder) addOp(op faultcheck.KVOp, w *faultcheck.Write, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
	case neverApplied(err):
		r.failed++
		return // never applied: not part of the history
	default:
		op.Return = faultcheck.Unknown
		if w != nil {
			w.Acked, w.Rev = false, 0
		}
	}
	r.ops = append(r.ops, op)
	if w != nil {
		r.writes = append(r.writes, *w)
	}
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
	r.clients.Go(func() {
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
	op := faultcheck.KVOp{Client: id, Key: key, Call: r.now()}
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
	op.Return = r.now()
	r.addOp(op, wr, err)
}

// semaClient takes a slot of one of the semaphores through n, holds it
// 100 to 700 ms (or until it is lost: longer than the Worlds' lease
// timeout, so that a cut holder finds out) and gives it back, until ctx
// ends.
func (r *recorder) semaClient(ctx context.Context, id int, n *node, rng *rand.Rand) {
	r.clients.Go(func() {
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
	call := r.now()
	l, err := w.Acquire(actx, sema, count)
	cancel()
	if err != nil {
		return // not held, or given up on
	}
	h := faultcheck.Hold{Client: id, Sema: sema, Count: count, Token: l.Token(), Call: call, From: r.now()}
	t := time.NewTimer(d)
	select {
	case <-l.Lost():
		h.Lost = true
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	h.To = r.now()
	r.mu.Lock()
	r.holds = append(r.holds, h)
	r.mu.Unlock()
	// Always given back, so that the lease's goroutine ends; a release
	// that fails is left to the cluster.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	_ = l.Release(rctx)
	rcancel()
}

// watch records what a watch of the clients' keys through w delivers,
// from revision from, until ctx ends, in the log it returns.
func (r *recorder) watch(ctx context.Context, w *world.World, name string, from uint64) *faultcheck.WatchLog {
	log := &faultcheck.WatchLog{Name: name, Prefix: "k/", From: from}
	r.mu.Lock()
	r.watches = append(r.watches, log)
	r.mu.Unlock()
	evs := w.Watch(ctx, "k/", from)
	r.watchers.Go(func() {
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
			r.mu.Lock()
			log.Deliveries = append(log.Deliveries, d)
			r.mu.Unlock()
		}
	})
	return log
}

// seen returns the revision a watch has seen everything up to.
func (r *recorder) seen(log *faultcheck.WatchLog) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := log.From
	if n := len(log.Deliveries); n > 0 {
		at = log.Deliveries[n-1].Rev
	}
	return at
}
