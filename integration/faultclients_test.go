package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/internal/faultcheck"
)

// faultOpTimeout bounds each client call: a call to a frozen or cut-off
// host gives up then, its outcome unknown.
const faultOpTimeout = 4 * time.Second

// client returns an API client of h's agent, through the unix socket in
// its data dir.
func (h *Host) client() (*api.Client, error) {
	return api.NewClient(filepath.Join(h.Data, "graft.sock"))
}

// recorder collects what the clients and watchers of one schedule saw.
// Times are the test process's monotonic clock, in nanoseconds since the
// recorder was made: every call is made from this process.
type recorder struct {
	start    time.Time
	clients  sync.WaitGroup
	watchers sync.WaitGroup

	mu      sync.Mutex
	ops     []faultcheck.KVOp
	writes  []faultcheck.Write
	watches []*faultcheck.WatchLog
	failed  int // calls that never reached an agent
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// addOp records a call. One that never reached an agent (nothing listened
// on its socket) was never applied and is left out; any other error
// leaves the outcome unknown.
func (r *recorder) addOp(op faultcheck.KVOp, w *faultcheck.Write, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
	case errors.Is(err, api.ErrNoAgent):
		r.failed++
		return
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

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// kvClient puts, reads (linearizable) and deletes keys through c until
// ctx ends, 20 to 80 ms apart. Values are unique.
func (r *recorder) kvClient(ctx context.Context, id int, c *api.Client, keys []string, rng *rand.Rand) {
	r.clients.Go(func() {
		for seq := 0; ctx.Err() == nil; seq++ {
			key := keys[rng.IntN(len(keys))]
			r.kvOp(ctx, c, id, rng.IntN(6), key, fmt.Sprintf("c%d.%d", id, seq))
			pause(ctx, time.Duration(20+rng.IntN(60))*time.Millisecond)
		}
	})
}

// kvOp makes one call: 0-1 a put, 2 a linearizable get and a
// compare-and-swap at the revision read, 3-4 a linearizable get, 5 a
// delete.
func (r *recorder) kvOp(ctx context.Context, c *api.Client, id, pick int, key, value string) {
	ctx, cancel := context.WithTimeout(ctx, faultOpTimeout)
	defer cancel()
	op := faultcheck.KVOp{Client: id, Key: key, Call: r.now()}
	var wr *faultcheck.Write
	var err error
	switch {
	case pick == 2:
		// The CAS compares the key's revision with the one the get read
		// (0: absent). Values are unique and a read sees whole raft
		// entries, so the key is at that revision exactly when it holds
		// the value read: the checker's compare by value models it.
		op.Kind = faultcheck.Get
		var kv api.KV
		if kv, op.Found, err = c.Get(ctx, key, api.Linearizable()); err != nil {
			break
		}
		op.Got, op.Return = string(kv.Value), r.now()
		r.addOp(op, nil, nil)
		op = faultcheck.KVOp{Client: id, Kind: faultcheck.CAS, Key: key, Value: value,
			Expect: string(kv.Value), ExpectAbsent: !op.Found, Call: r.now()}
		var a api.CASAnswer
		a, err = c.PutCAS(ctx, key, []byte(value), kv.ModRev)
		op.Swapped = a.Applied
		if err != nil || a.Applied {
			wr = &faultcheck.Write{Key: key, Value: value, Acked: true, Rev: a.Rev}
		}
	case pick <= 1:
		op.Kind, op.Value = faultcheck.Put, value
		var rev uint64
		rev, err = c.Put(ctx, key, []byte(value))
		wr = &faultcheck.Write{Key: key, Value: value, Acked: true, Rev: rev}
	case pick <= 4:
		op.Kind = faultcheck.Get
		var kv api.KV
		kv, op.Found, err = c.Get(ctx, key, api.Linearizable())
		op.Got = string(kv.Value)
	default:
		op.Kind = faultcheck.Delete
		var rev uint64
		rev, err = c.Delete(ctx, key)
		wr = &faultcheck.Write{Key: key, Deleted: true, Acked: true, Rev: rev}
	}
	op.Return = r.now()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("the schedule ended: %w", err) // outcome unknown
	}
	r.addOp(op, wr, err)
}

// watch records what a watch of prefix through c delivers after revision
// from, until ctx ends, in the log it returns. A watch that ends (its
// agent killed, frozen past a read, cut off) is started again after the
// last revision it saw, into the same log.
func (r *recorder) watch(ctx context.Context, c *api.Client, name, prefix string, from uint64) *faultcheck.WatchLog {
	log := &faultcheck.WatchLog{Name: name, Prefix: prefix, From: from}
	r.mu.Lock()
	r.watches = append(r.watches, log)
	r.mu.Unlock()
	r.watchers.Go(func() {
		for ctx.Err() == nil {
			w, err := c.Watch(ctx, prefix, r.seen(log))
			if err != nil {
				pause(ctx, 200*time.Millisecond)
				continue
			}
			for ev, err := range w.Events() {
				if err != nil {
					break
				}
				r.mu.Lock()
				log.Deliveries = append(log.Deliveries, delivery(ev))
				r.mu.Unlock()
			}
			w.Close()
		}
	})
	return log
}

// delivery is a watch event as the watch checker takes it.
func delivery(ev api.WatchEvent) faultcheck.Delivery {
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
	return d
}

func change(e api.Event) faultcheck.Change {
	return faultcheck.Change{Rev: e.KV.ModRev, Key: e.KV.Key, Value: string(e.KV.Value), Deleted: e.Type == api.EventDelete}
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

// summary counts what the schedule exercised.
func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var unknown, gets, deliveries, resyncs int
	for _, op := range r.ops {
		if op.Return == faultcheck.Unknown {
			unknown++
		} else if op.Kind == faultcheck.Get {
			gets++
		}
	}
	for _, w := range r.watches {
		for _, d := range w.Deliveries {
			deliveries++
			if d.Resync {
				resyncs++
			}
		}
	}
	return fmt.Sprintf("%d key operations (%d linearizable gets returned, %d of unknown outcome, %d never reached an agent), "+
		"%d watchers (%d deliveries, %d resyncs)", len(r.ops), gets, unknown, r.failed, len(r.watches), deliveries, resyncs)
}
