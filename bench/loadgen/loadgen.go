// Package loadgen is the load the benchmark driver puts on graft and on
// its peers alike: clients writing as fast as they can, and the time to a
// first successful write (the driver and the etcd helper, another module,
// both use it, so both systems get the same load).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what a load run measured: operations per second and the
// latency percentiles of the operations that succeeded.
type Result struct {
	Ops    int     `json:"ops"`
	Errors int     `json:"errors"`
	Rate   float64 `json:"rate"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
}

// Run runs op from clients goroutines, each as fast as it can, for
// dur, each call with its client's number and a fresh 8-byte key. A
// failed call counts as an error and the client goes on. Calls under way
// at the end finish and count; if none has succeeded by then (a loaded
// machine, a short dur), the clients go on until one has, for up to a
// minute.
func Run(ctx context.Context, clients int, dur time.Duration, op func(ctx context.Context, client int, key string) error) (Result, error) {
	lat := make([][]time.Duration, clients)
	errs := make([]int, clients)
	var succeeded atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	done := func() bool {
		since := time.Since(start)
		return ctx.Err() != nil || since > time.Minute || (since >= dur && succeeded.Load() > 0)
	}
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			for !done() {
				key := fmt.Sprintf("%08x", rng.Uint32())
				t := time.Now()
				if err := op(ctx, c, key); err != nil {
					errs[c]++
					Pause(ctx, time.Millisecond) // no hot loop on a node that refuses at once
					continue
				}
				lat[c] = append(lat[c], time.Since(t))
				succeeded.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	var r Result
	for _, e := range errs {
		r.Errors += e
	}
	r.Ops = len(all)
	if r.Ops == 0 {
		return r, errors.Join(ctx.Err(), fmt.Errorf("no operation succeeded in %v (%d errors)", elapsed.Round(time.Millisecond), r.Errors))
	}
	slices.Sort(all)
	r.Rate = float64(r.Ops) / elapsed.Seconds()
	r.P50ms = MS(all[len(all)/2])
	r.P99ms = MS(all[len(all)*99/100])
	return r, nil
}

// MS is d in milliseconds.
func MS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Pause waits d or until ctx ends.
func Pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// FirstWrite starts a try of write every 5ms, each allowed 2s, from start
// until one succeeds, and returns the time from start to that success: a
// try that hangs while there is no leader does not hide the moment writes
// work again. A try's error for which fatal (if given) reports true ends
// it at once with that error. It waits for the tries still running before
// it returns.
func FirstWrite(ctx context.Context, start time.Time, write func(context.Context) error, fatal func(error) bool) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	won := make(chan time.Duration, 1)
	var mu sync.Mutex
	var last error
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < time.Minute {
		wg.Go(func() {
			tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
			defer tcancel()
			err := write(tctx)
			if err == nil {
				select {
				case won <- time.Since(start):
				default:
				}
				return
			}
			mu.Lock()
			last = err
			mu.Unlock()
		})
		select {
		case took := <-won:
			return took, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		mu.Lock()
		stop := last != nil && fatal != nil && fatal(last)
		mu.Unlock()
		if stop {
			return 0, last
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return 0, fmt.Errorf("no write succeeded within a minute: %w", last)
}
