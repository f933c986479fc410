package faultsuite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/internal/faultcheck"
)

// defaultSchedules is how many random schedules a run tries.
const defaultSchedules = 20

// seeds returns the schedules' seeds: GRAFT_FAULT_SEED's alone, or
// GRAFT_FAULT_SCHEDULES (default 20) random ones.
func seeds(t *testing.T) []uint64 {
	if s := os.Getenv("GRAFT_FAULT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GRAFT_FAULT_SEED=%q: want a schedule's seed, an unsigned integer", s)
		}
		return []uint64{seed}
	}
	n := defaultSchedules
	if s := os.Getenv("GRAFT_FAULT_SCHEDULES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("GRAFT_FAULT_SCHEDULES=%q: want a number of schedules, at least 1", s)
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = randomSeed()
	}
	return out
}

// randomSeed returns a random schedule's seed, short enough to type.
func randomSeed() uint64 { return rand.Uint64() % 1e12 }

// Random schedules of leader and follower kills, restarts and cuts, under
// clients that write, read, watch and take semaphores on every node: every
// key's history is linearizable, no semaphore has more holders than its
// count or a token out of order, a killed holder's slots are freed within
// the documented bound, every watcher sees every committed change in
// order, and every acknowledged write survives a restart of the whole
// cluster.
func TestFaultSchedulesKeepEveryGuarantee(t *testing.T) {
	start := time.Now()
	for _, seed := range seeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runSchedule(t, seed) })
		})
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// runSchedule runs the schedule of seed and checks what the clients saw;
// it returns how much the checkers were given.
func runSchedule(t *testing.T, seed uint64) tally {
	replay := fmt.Sprintf("seed %d (GRAFT_FAULT_SEED=%d go test -race -run TestFaultSchedules ./faultsuite/ replays this schedule)", seed, seed)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := newRecorder()
	h := newHarness(ctx, t, rec)
	rng := rand.New(rand.NewPCG(seed, 0))
	steps := plan(rng)
	t.Logf("%s: steps %v", replay, steps)

	cctx, stopClients := context.WithCancel(ctx)
	id := 0
	for _, n := range h.nodes {
		for range 2 {
			rec.kvClient(cctx, id, n, rand.New(rand.NewPCG(seed, uint64(id+1))))
			id++
		}
		rec.semaClient(cctx, id, n, rand.New(rand.NewPCG(seed, uint64(id+1))))
		id++
	}
	var kills []faultcheck.Kill
	for _, s := range steps {
		k, err := h.run(s, rng)
		if err != nil {
			stopClients()
			t.Fatalf("%s: %v", replay, err)
		}
		if k != nil {
			kills = append(kills, *k)
		}
	}
	stopClients()
	rec.Clients.Wait()

	changes, err := h.settle()
	if err != nil {
		t.Fatalf("%s: %v", replay, err)
	}
	finals, err := h.recover()
	if err != nil {
		t.Fatalf("%s: %v", replay, err)
	}
	for _, err := range check(rec, kills, changes, finals) {
		t.Errorf("%s: %v", replay, err)
	}
	t.Log(rec.summary(kills))
	return rec.tally()
}

// settle heals the cluster, waits for every watcher to catch up with
// what was committed and stops them; it returns the committed changes.
func (h *harness) settle() ([]faultcheck.Change, error) {
	h.f.Heal()
	if err := h.waitHealthy(); err != nil {
		return nil, fmt.Errorf("after the schedule: %w", err)
	}
	l := h.leader()
	if l == nil {
		return nil, errors.New("after the schedule: no leader")
	}
	if err := l.current().Linearize(h.ctx); err != nil {
		return nil, fmt.Errorf("after the schedule: %w", err)
	}
	changes, last, err := committed(h.nodes, l)
	if err != nil {
		return nil, err
	}
	var lastK uint64 // the last change a watcher must see
	for _, c := range changes {
		if strings.HasPrefix(c.Key, "k/") {
			lastK = c.Rev
		}
	}
	for _, n := range h.nodes {
		log := n.watchLog()
		if err := waitFor(time.Minute, n.slot.ID+"'s watcher up to @"+strconv.FormatUint(lastK, 10), func() bool {
			return h.rec.Seen(log) >= lastK
		}); err != nil {
			// The watch checker reports what it missed.
			h.t.Log(err)
		}
		h.rec.SetUntil(log, last)
		n.stopWatching()
	}
	h.rec.Watchers.Wait()
	return changes, nil
}

// recover kills every node at once and restarts them all, and returns
// each node's keys once it has caught up with the leader.
func (h *harness) recover() (map[string]map[string]faultcheck.KV, error) {
	for _, n := range h.nodes {
		h.kill(n)
	}
	for _, n := range h.nodes {
		h.startAgain(n)
	}
	for _, n := range h.nodes {
		h.up(n)
		n.stopWatching()
	}
	if err := h.waitHealthy(); err != nil {
		return nil, fmt.Errorf("after restarting every node: %w", err)
	}
	finals := map[string]map[string]faultcheck.KV{}
	for _, n := range h.nodes {
		if err := n.current().Linearize(h.ctx); err != nil {
			return nil, fmt.Errorf("%s after restarting every node: %w", n.slot.ID, err)
		}
		finals[n.slot.ID] = keys(n.slot.FSM(), "k/")
	}
	h.rec.Watchers.Wait()
	return finals, nil
}

// check runs the four checkers.
func check(rec *recorder, kills []faultcheck.Kill, changes []faultcheck.Change, finals map[string]map[string]faultcheck.KV) []error {
	errs := rec.Check(changes, finals, time.Minute)
	if err := faultcheck.Released(kills, releaseBound); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// summary counts what the schedule exercised.
func (r *recorder) summary(kills []faultcheck.Kill) string {
	c := r.Counts()
	var slowest time.Duration
	for _, k := range kills {
		slowest = max(slowest, k.After)
	}
	return fmt.Sprintf("%d key operations (%d of unknown outcome, %d known not applied left out), %d semaphore holds (%d lost), "+
		"%d kills of a holder (slots freed within %v), %d watchers (%d deliveries, %d resyncs)",
		c.Ops, c.Unknown, c.LeftOut, c.Holds, c.Lost, len(kills), slowest, c.Watchers, c.Deliveries, c.Resyncs)
}
