package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
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

// recorder is one schedule's history, with the clients and watchers
// that record it. Its times are the test process's monotonic clock, in
// nanoseconds since the recorder was made (every call is made from this
// process), and a call that never reached an agent (nothing listened on
// its socket) was never applied.
type recorder struct{ faultcheck.Recorder }

func newRecorder() *recorder {
	start := time.Now()
	return &recorder{faultcheck.Recorder{
		NeverApplied: func(err error) bool { return errors.Is(err, api.ErrNoAgent) },
		Clock:        func() int64 { return int64(time.Since(start)) },
	}}
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
	r.Clients.Go(func() {
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
	op := faultcheck.KVOp{Client: id, Key: key, Call: r.Now()}
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
		op.Got, op.Return = string(kv.Value), r.Now()
		r.AddOp(op, nil, nil)
		op = faultcheck.KVOp{Client: id, Kind: faultcheck.CAS, Key: key, Value: value,
			Expect: string(kv.Value), ExpectAbsent: !op.Found, Call: r.Now()}
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
	op.Return = r.Now()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("the schedule ended: %w", err) // outcome unknown
	}
	r.AddOp(op, wr, err)
}

// watch records what a watch of prefix through c delivers after revision
// from, until ctx ends, in the log it returns. A watch that ends (its
// agent killed, frozen past a read, cut off) is started again after the
// last revision it saw, into the same log.
func (r *recorder) watch(ctx context.Context, c *api.Client, name, prefix string, from uint64) *faultcheck.WatchLog {
	log := r.NewWatch(name, prefix, from)
	r.Watchers.Go(func() {
		for ctx.Err() == nil {
			w, err := c.Watch(ctx, prefix, r.Seen(log))
			if err != nil {
				pause(ctx, 200*time.Millisecond)
				continue
			}
			for ev, err := range w.Events() {
				if err != nil {
					break
				}
				r.Deliver(log, delivery(ev))
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

// summary counts what the schedule exercised.
func (r *recorder) summary() string {
	c := r.Counts()
	return fmt.Sprintf("%d key operations (%d linearizable gets returned, %d of unknown outcome, %d never reached an agent), "+
		"%d watchers (%d deliveries, %d resyncs)", c.Ops, c.Gets, c.Unknown, c.LeftOut, c.Watchers, c.Deliveries, c.Resyncs)
}
