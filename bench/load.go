package main

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

// loadResult is what a load run measured: operations per second and the
// latency percentiles of the operations that succeeded.
type loadResult struct {
	Ops    int     `json:"ops"`
	Errors int     `json:"errors"`
	Rate   float64 `json:"rate"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
}

// runLoad runs op from clients goroutines, each as fast as it can, for
// dur, each call with its client's number and a fresh 8-byte key. A
// failed call counts as an error and the client goes on. Calls under way
// at the end finish and count; if none has succeeded by then (a loaded
// machine, a short dur), the clients go on until one has, for up to a
// minute.
func runLoad(ctx context.Context, clients int, dur time.Duration, op func(ctx context.Context, client int, key string) error) (loadResult, error) {
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
					pause(ctx, time.Millisecond) // no hot loop on a node that refuses at once
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
	var r loadResult
	for _, e := range errs {
		r.Errors += e
	}
	r.Ops = len(all)
	if r.Ops == 0 {
		return r, errors.Join(ctx.Err(), fmt.Errorf("no operation succeeded in %v (%d errors)", elapsed.Round(time.Millisecond), r.Errors))
	}
	slices.Sort(all)
	r.Rate = float64(r.Ops) / elapsed.Seconds()
	r.P50ms = ms(all[len(all)/2])
	r.P99ms = ms(all[len(all)*99/100])
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
