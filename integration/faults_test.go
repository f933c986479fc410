package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/internal/faultcheck"
)

// defaultFaultSchedules is how many random schedules a run tries.
const defaultFaultSchedules = 3

// faultSeeds returns the schedules' seeds: GRAFT_INTEG_FAULT_SEED's alone,
// or GRAFT_INTEG_FAULT_SCHEDULES (default 3) random ones, which come in
// groups of planParts that between them run every kind of fault (see
// faultPlan).
func faultSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("GRAFT_INTEG_FAULT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GRAFT_INTEG_FAULT_SEED=%q: want a schedule's seed, an unsigned integer", s)
		}
		return []uint64{seed}
	}
	n := defaultFaultSchedules
	if s := os.Getenv("GRAFT_INTEG_FAULT_SCHEDULES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("GRAFT_INTEG_FAULT_SCHEDULES=%q: want a number of schedules, at least 1", s)
		}
	}
	out := make([]uint64, n)
	var group uint64
	for i := range out {
		if i%planParts == 0 {
			group = rand.Uint64() % 333_333_333_333 // planParts*group+part: short enough to type
		}
		out[i] = group*planParts + uint64(i%planParts)
	}
	return out
}

// Random schedules of kills (-9) of the leader or a follower and restarts
// on the same data dir, freezes (SIGSTOP, SIGCONT), cuts of a host or of
// the leader, a bridge (the leader and a follower cut apart, both reaching
// the third host), a host killed and moved to a new address (it keeps its
// seat) and a kill during a cut, the default three schedules running
// every kind between them, under clients on every host that put, read (linearizable) and delete
// keys through its API socket and a watcher on every host: every key's
// history is linearizable, every watcher sees every committed change in
// order, and every host holds every acknowledged write, and still does
// once every host has been killed and started again. Then one host
// leaves for good: the others converge on the exports of the two still
// exporting.
func TestRandomFaultSchedulesOnRealHosts(t *testing.T) {
	c := NewCluster(t, 3)
	for _, h := range c.Hosts {
		h.Graph = []string{"yaml", h.WriteFile("share.yaml", shareGraph(h))}
	}
	c.StartJoined(c.Hosts, "--export-grace", "2s")
	waitThree(t, c)
	clients := map[*Host]*api.Client{}
	for _, h := range c.Hosts {
		cl, err := h.client()
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[h] = cl
	}
	var done []scheduleWrites
	ran := map[fault]bool{}
	defer func() {
		if left := missing(ran); len(left) > 0 {
			t.Logf("the schedules ran every kind of fault but %q", left)
		} else {
			t.Logf("the schedules ran every kind of fault")
		}
	}()
	for i, seed := range faultSeeds(t) {
		for _, s := range faultPlan(seed) {
			ran[s.fault] = true
		}
		replay := fmt.Sprintf("seed %d (GRAFT_INTEG_FAULT_SEED=%d go test -race -run TestRandomFaultSchedulesOnRealHosts ./integration/ replays this schedule)", seed, seed)
		start := time.Now()
		done = append(done, runFaultSchedule(t, c, clients, fmt.Sprintf("f%d/", i), seed, replay))
		Figure(t, fmt.Sprintf("fault schedule %d, seed %d: time it took", i, seed), time.Since(start))
		if t.Failed() {
			return
		}
	}
	crashAll(t, c, clients, done)
	exportsConverge(t, c)
}

// missing returns the kinds of fault not in ran.
func missing(ran map[fault]bool) []fault {
	var out []fault
	for f := range nFaults {
		if !ran[f] {
			out = append(out, f)
		}
	}
	return out
}

// scheduleWrites is what a schedule's clients wrote, under prefix, up to
// revision last.
type scheduleWrites struct {
	replay, prefix string
	writes         []faultcheck.Write
	last           uint64
}

// crashAll kills every host's agent (SIGKILL, one right after the other)
// and starts them all again on their data dirs: every host holds every
// write the schedules' clients had acknowledged.
func crashAll(t *testing.T, c *Cluster, clients map[*Host]*api.Client, done []scheduleWrites) {
	t.Helper()
	for _, h := range c.Hosts {
		h.Kill()
	}
	start := time.Now()
	for _, h := range c.Hosts {
		h.Start()
	}
	c.waitAgreement()
	Figure(t, "every host killed and started again: time until one cluster of three voters", time.Since(start))
	for _, s := range done {
		for _, h := range c.Hosts {
			var kvs map[string]faultcheck.KV
			c.WaitFor(fmt.Sprintf("%s, restarted, caught up with @%d", h.Name, s.last), settleWait, func() (err error) {
				kvs, err = caughtUp(clients[h], s.prefix, s.last)
				return err
			})
			if err := faultcheck.Durable(h.Name, s.writes, kvs); err != nil {
				t.Errorf("%s: after every host was killed and started again: %v", s.replay, err)
			}
		}
	}
}

// runFaultSchedule runs seed's schedule on c with clients on the keys under
// prefix, checks what they saw and returns what they wrote.
func runFaultSchedule(t *testing.T, c *Cluster, clients map[*Host]*api.Client, prefix string, seed uint64, replay string) scheduleWrites {
	t.Helper()
	steps := faultPlan(seed)
	t.Logf("%s: steps %v", replay, steps)
	leader := c.waitAgreement()
	_, from, err := listLinearizable(clients[leader], prefix)
	if err != nil {
		t.Fatalf("%s: %v", replay, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := newRecorder()
	keys := []string{prefix + "0", prefix + "1", prefix + "2", prefix + "3"}
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	cctx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	id := 0
	logs := map[*Host]*faultcheck.WatchLog{}
	for _, h := range c.Hosts {
		logs[h] = rec.watch(wctx, clients[h], h.Name, prefix, from)
		for range 2 {
			rec.kvClient(cctx, id, clients[h], keys, rand.New(rand.NewPCG(seed, uint64(id+1))))
			id++
		}
	}
	semas := startSemaClients(cctx, c, clients, prefix, seed, id)
	defer semas.check(t, replay)
	for _, s := range steps {
		c.inject(s)
	}
	c.waitServed(rec, id)
	stopClients()
	rec.Clients.Wait()

	leader = c.waitAgreement()
	// A last write marks the end: every watcher must see up to it (a watch
	// reports revisions that change its prefix only).
	last, err := rec.endMark(clients[leader], prefix+"end")
	if err != nil {
		t.Fatalf("%s: after the schedule: %v", replay, err)
	}
	committed, err := history(ctx, clients[leader], prefix, from, last)
	if err != nil {
		t.Fatalf("%s: %v", replay, err)
	}
	finals := map[string]map[string]faultcheck.KV{}
	for _, h := range c.Hosts {
		var kvs map[string]faultcheck.KV
		c.WaitFor(h.Name+" caught up with @"+strconv.FormatUint(last, 10), settleWait, func() (err error) {
			kvs, err = caughtUp(clients[h], prefix, last)
			return err
		})
		finals[h.Name] = kvs
		log := logs[h]
		c.WaitFor(h.Name+"'s watcher up to @"+strconv.FormatUint(last, 10), settleWait, func() error {
			if at := rec.Seen(log); at < last {
				return fmt.Errorf("it has seen up to @%d", at)
			}
			return nil
		})
	}
	stopWatching()
	rec.Watchers.Wait()
	for _, log := range logs {
		rec.SetUntil(log, last)
	}
	if len(committed) < 10 {
		t.Errorf("%s: %d changes committed: the clients hardly did anything", replay, len(committed))
	}
	for _, err := range checkFaults(rec, committed, finals) {
		t.Errorf("%s: %v", replay, err)
	}
	t.Logf("%s: %s, %d changes committed", replay, rec.summary(), len(committed))
	return scheduleWrites{replay: replay, prefix: prefix, writes: rec.History().Writes, last: last}
}

// waitAgreement waits for c's hosts to be one cluster of three voters and
// returns the leader.
func (c *Cluster) waitAgreement() *Host {
	c.t.Helper()
	var leader *Host
	c.WaitFor("one cluster of three voters", formWait, func() (err error) {
		leader, err = Agreement(c.Hosts, 3)
		return err
	})
	return leader
}

// endMark puts key through c, as one more client's write, and returns
// its revision.
func (r *recorder) endMark(c *api.Client, key string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), settleWait)
	defer cancel()
	op := faultcheck.KVOp{Client: -1, Kind: faultcheck.Put, Key: key, Value: "end", Call: r.Now()}
	rev, err := c.Put(ctx, key, []byte("end"))
	if err != nil {
		return 0, fmt.Errorf("the write marking the end: %w", err)
	}
	op.Return = r.Now()
	r.AddOp(op, &faultcheck.Write{Key: key, Value: "end", Acked: true, Rev: rev}, nil)
	return rev, nil
}

// listLinearizable lists prefix through c, linearizable, within
// settleWait, asking again while the cluster settles.
func listLinearizable(c *api.Client, prefix string) (map[string]faultcheck.KV, uint64, error) {
	deadline := time.Now().Add(settleWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), faultOpTimeout)
		kvs, rev, err := c.List(ctx, prefix, api.Linearizable())
		cancel()
		if err == nil {
			return kvMap(kvs), rev, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("a linearizable list of %q: %w", prefix, err)
		}
		time.Sleep(pollEvery)
	}
}

func kvMap(kvs []api.KV) map[string]faultcheck.KV {
	m := map[string]faultcheck.KV{}
	for _, kv := range kvs {
		m[kv.Key] = faultcheck.KV{Value: string(kv.Value), ModRev: kv.ModRev}
	}
	return m
}

// caughtUp returns the keys under prefix as the agent of c holds them (a
// local read), once it has applied revision rev.
func caughtUp(c *api.Client, prefix string, rev uint64) (map[string]faultcheck.KV, error) {
	ctx, cancel := context.WithTimeout(context.Background(), faultOpTimeout)
	defer cancel()
	kvs, at, err := c.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	if at < rev {
		return nil, fmt.Errorf("it is at @%d", at)
	}
	return kvMap(kvs), nil
}

// history returns the committed changes under prefix after from through
// last, as a fresh watch of the leader replays them.
func history(ctx context.Context, c *api.Client, prefix string, from, last uint64) ([]faultcheck.Change, error) {
	ctx, cancel := context.WithTimeout(ctx, settleWait)
	defer cancel()
	w, err := c.Watch(ctx, prefix, from)
	if err != nil {
		return nil, fmt.Errorf("replaying the committed changes: %w", err)
	}
	defer w.Close()
	var out []faultcheck.Change
	for ev, err := range w.Events() {
		if err != nil {
			return nil, fmt.Errorf("replaying the committed changes: %w", err)
		}
		if ev.Resync {
			return nil, fmt.Errorf("replaying the committed changes after @%d: the leader no longer holds them (resync at @%d)", from, ev.Rev)
		}
		for _, e := range ev.Events {
			out = append(out, change(e))
		}
		if ev.Rev >= last {
			return out, nil
		}
	}
	return nil, fmt.Errorf("replaying the committed changes: the watch ended before @%d", last)
}

// checkFaults runs the checkers: linearizability, each watcher's
// completeness, each host's durability; and that every acknowledged
// write is in the committed history at its revision.
func checkFaults(rec *recorder, committed []faultcheck.Change, finals map[string]map[string]faultcheck.KV) []error {
	errs := rec.Check(committed, finals, time.Minute)
	if err := ackedCommitted(rec.History().Writes, committed); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// ackedCommitted checks that every acknowledged write that changed
// something is the committed change at its revision.
func ackedCommitted(writes []faultcheck.Write, committed []faultcheck.Change) error {
	at := map[uint64][]faultcheck.Change{}
	for _, c := range committed {
		at[c.Rev] = append(at[c.Rev], c)
	}
	for _, w := range writes {
		if !w.Acked || w.Deleted {
			continue // a delete of a missing key changes nothing
		}
		found := false
		for _, c := range at[w.Rev] {
			found = found || (c.Key == w.Key && c.Value == w.Value && !c.Deleted)
		}
		if !found {
			return &faultcheck.Violation{Checker: "acknowledged", What: fmt.Sprintf("%s is not the committed change @%d: %v", w, w.Rev, at[w.Rev])}
		}
	}
	return nil
}
