package faultcheck

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var errNoLeader = errors.New("no leader")

// A call that returned nil is recorded as it is, its write acknowledged;
// one whose error NeverApplied accepts is left out and counted; one with
// any other error gets an unknown outcome and an unacknowledged write.
// Without NeverApplied, every error leaves the outcome unknown.
func TestRecorderLeavesOutCallsNeverAppliedAndUnacksUnknownOnes(t *testing.T) {
	r := &Recorder{NeverApplied: func(err error) bool { return errors.Is(err, errNoLeader) }}
	put := func(v string, rev uint64, err error) {
		r.AddOp(KVOp{Client: 1, Kind: Put, Key: "k", Value: v, Call: r.Now(), Return: r.Now()},
			&Write{Key: "k", Value: v, Acked: true, Rev: rev}, err)
	}
	put("ok", 4, nil)
	put("refused", 5, fmt.Errorf("put: %w", errNoLeader))
	put("timed out", 6, errors.New("deadline exceeded"))
	h := r.History()
	if len(h.Ops) != 2 || h.Ops[0].Value != "ok" || h.Ops[0].Return == Unknown || h.Ops[1].Value != "timed out" || h.Ops[1].Return != Unknown {
		t.Errorf("ops %v: want the put of ok returned and the one of timed out unknown", h.Ops)
	}
	want := []Write{{Key: "k", Value: "ok", Acked: true, Rev: 4}, {Key: "k", Value: "timed out"}}
	if fmt.Sprint(h.Writes) != fmt.Sprint(want) {
		t.Errorf("writes %v, want %v", h.Writes, want)
	}
	if h.LeftOut != 1 || r.Counts().LeftOut != 1 {
		t.Errorf("%d calls left out (counted %d), want 1", h.LeftOut, r.Counts().LeftOut)
	}

	var zero Recorder
	zero.AddOp(KVOp{Kind: Get, Key: "k", Call: 1, Return: 2}, nil, fmt.Errorf("get: %w", errNoLeader))
	if h := zero.History(); len(h.Ops) != 1 || h.Ops[0].Return != Unknown || h.LeftOut != 0 {
		t.Errorf("without NeverApplied: ops %v, %d left out; want the get recorded, its outcome unknown", h.Ops, h.LeftOut)
	}
}

// The counter clock gives every call and return, from any goroutine, a
// time of its own, later than every one before it; a Clock set replaces
// it.
func TestRecorderClockOrdersCallsAcrossGoroutines(t *testing.T) {
	var r Recorder
	const goroutines, each = 8, 5000
	times := make([][]int64, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for range each {
				times[g] = append(times[g], r.Now())
			}
		})
	}
	close(start)
	wg.Wait()
	seen := map[int64]bool{}
	for g, ts := range times {
		for i, at := range ts {
			if seen[at] || (i > 0 && at <= ts[i-1]) {
				t.Fatalf("goroutine %d's time %d is %d, after %v: want a new, later one", g, i, at, ts[:i])
			}
			seen[at] = true
		}
	}
	if got := r.Now(); got != goroutines*each+1 {
		t.Errorf("the %dth time is %d", goroutines*each+1, got)
	}
	c := &Recorder{Clock: func() int64 { return 42 }}
	if got := c.Now(); got != 42 {
		t.Errorf("with a Clock: Now() = %d, want the Clock's 42", got)
	}
}

// A watch log gets its deliveries in order; Seen is its last delivery's
// revision (its From before any); SetUntil sets what it must reach; the
// History's copy does not change as deliveries come in.
func TestRecorderWatchLogsFollowDeliveries(t *testing.T) {
	var r Recorder
	log := r.NewWatch("n1", "k/", 7)
	if got := r.Seen(log); got != 7 {
		t.Errorf("before any delivery: seen @%d, want @7", got)
	}
	r.Deliver(log, Delivery{Rev: 9, Changes: []Change{{Rev: 9, Key: "k/a", Value: "x"}}})
	r.Deliver(log, Delivery{Rev: 12, Resync: true, State: map[string]KV{"k/a": {Value: "y", ModRev: 11}}})
	if got := r.Seen(log); got != 12 {
		t.Errorf("after deliveries through @12: seen @%d", got)
	}
	r.SetUntil(log, 12)
	h := r.History()
	r.Deliver(log, Delivery{Rev: 13})
	if len(h.Watches) != 1 || h.Watches[0].Until != 12 || len(h.Watches[0].Deliveries) != 2 {
		t.Errorf("history's watches %+v: want one, until @12, with the two deliveries made before", h.Watches)
	}
	c := r.Counts()
	if c.Watchers != 1 || c.Deliveries != 3 || c.Resyncs != 1 {
		t.Errorf("counts %+v: want 1 watcher, 3 deliveries, 1 resync", c)
	}
}

// Check runs every checker on what was recorded: a clean history passes,
// and a stale read, a double grant, a missed change and a lost write are
// each reported.
func TestRecorderCheckRunsEveryChecker(t *testing.T) {
	committed := []Change{{Rev: 3, Key: "k/a", Value: "v1"}, {Rev: 4, Key: "k/a", Value: "v2"}}
	record := func(staleRead, doubleGrant, missedChange bool) *Recorder {
		r := &Recorder{}
		r.AddOp(KVOp{Client: 0, Kind: Put, Key: "k/a", Value: "v1", Call: r.Now(), Return: r.Now()}, &Write{Key: "k/a", Value: "v1", Acked: true, Rev: 3}, nil)
		r.AddOp(KVOp{Client: 0, Kind: Put, Key: "k/a", Value: "v2", Call: r.Now(), Return: r.Now()}, &Write{Key: "k/a", Value: "v2", Acked: true, Rev: 4}, nil)
		got := "v2"
		if staleRead {
			got = "v1"
		}
		r.AddOp(KVOp{Client: 1, Kind: Get, Key: "k/a", Call: r.Now(), Return: r.Now(), Found: true, Got: got}, nil, nil)
		r.AddHold(Hold{Client: 0, Sema: "s", Count: 1, Token: 1, Call: 1, From: 2, To: 5})
		if doubleGrant {
			r.AddHold(Hold{Client: 1, Sema: "s", Count: 1, Token: 2, Call: 3, From: 4, To: 6})
		}
		log := r.NewWatch("n1", "k/", 2)
		r.Deliver(log, Delivery{Rev: 3, Changes: committed[:1]})
		if !missedChange {
			r.Deliver(log, Delivery{Rev: 4, Changes: committed[1:]})
		}
		r.SetUntil(log, 4)
		return r
	}
	good := map[string]map[string]KV{"n1": {"k/a": {Value: "v2", ModRev: 4}}, "n2": {"k/a": {Value: "v2", ModRev: 4}}}
	if errs := record(false, false, false).Check(committed, good, time.Minute); len(errs) > 0 {
		t.Errorf("a clean history: %v", errs)
	}
	lost := map[string]map[string]KV{"n1": {"k/a": {Value: "v2", ModRev: 4}}, "n2": {}}
	errs := record(true, true, true).Check(committed, lost, time.Minute)
	var checkers []string
	for _, err := range errs {
		var v *Violation
		if !errors.As(err, &v) {
			t.Fatalf("%v: not a *Violation", err)
		}
		checkers = append(checkers, v.Checker)
	}
	if got := strings.Join(checkers, " "); got != "linearizable semaphore watch durable" {
		t.Errorf("violations from %q, want from linearizable semaphore watch durable: %v", got, errs)
	}
}
