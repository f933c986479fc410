package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/fsm"
)

// semaWait bounds what the semaphore tests wait for.
const semaWait = 20 * time.Second

// semaState is semaphore id's state in member 0's copy.
func (f *fixture) semaState(id string) fsm.SemaState {
	st, _ := f.cluster.Members[0].Node().FSM().Sema(id)
	return st
}

// acquireAsync starts an Acquire whose result arrives on the channel.
func acquireAsync(ctx context.Context, c *api.Client, id string, count int64) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		s, err := c.Acquire(ctx, id, count)
		ch <- acquired{s, err}
	}()
	return ch
}

type acquired struct {
	slot *api.Slot
	err  error
}

// result waits for an acquireAsync's result, failing the test after a
// while.
func result(t *testing.T, ch <-chan acquired) acquired {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(semaWait):
		t.Fatalf("acquire still waiting after %v", semaWait)
	}
	panic("unreachable")
}

// mustAcquire takes a slot, failing the test otherwise, and releases it
// when the test ends.
func mustAcquire(t *testing.T, c *api.Client, id string, count int64) *api.Slot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), semaWait)
	defer cancel()
	s, err := c.Acquire(ctx, id, count)
	if err != nil {
		t.Fatalf("acquire %s: %v", id, err)
	}
	t.Cleanup(func() { s.Release(context.Background()) })
	return s
}

// A waiter gets the slot once its holder releases it, with a larger
// token; until then it waits in the cluster's queue.
func TestSemaReleaseHandsTheSlotToTheWaiterWithALargerToken(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	first := mustAcquire(t, f.client, "db", 1)
	if first.Token() == 0 || first.ID() != "db" || first.Rev() < first.Token() {
		t.Errorf("first slot: id %q token %d rev %d", first.ID(), first.Token(), first.Rev())
	}
	second := acquireAsync(t.Context(), f.client, "db", 1)
	waitUntil(t, semaWait, "a waiter queued", func() bool { return len(f.semaState("db").Waiters) == 1 })
	if err := first.Release(t.Context()); err != nil {
		t.Fatalf("release: %v", err)
	}
	r := result(t, second)
	if r.err != nil {
		t.Fatalf("the waiter: %v", r.err)
	}
	defer r.slot.Release(context.Background())
	if r.slot.Token() <= first.Token() {
		t.Errorf("tokens %d then %d: want increasing", first.Token(), r.slot.Token())
	}
	if err := first.Release(t.Context()); err != nil {
		t.Errorf("a second release: %v", err)
	}
	st := f.semaState("db")
	if len(st.Holders) != 1 || st.Holders[0].Token != r.slot.Token() {
		t.Errorf("holders %+v, want only the second", st.Holders)
	}
}

// A semaphore of count 2 lets two hold at once, not three.
func TestSemaCountTwoHoldsTwoAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := mustAcquire(t, f.client, "pair", 2)
	b := mustAcquire(t, f.client, "pair", 2)
	third := acquireAsync(t.Context(), f.client, "pair", 2)
	waitUntil(t, semaWait, "the third queued", func() bool { return len(f.semaState("pair").Waiters) == 1 })
	if len(f.semaState("pair").Holders) != 2 {
		t.Fatalf("holders %+v, want two", f.semaState("pair").Holders)
	}
	if err := b.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := result(t, third)
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.slot.Release(context.Background())
	if r.slot.Token() <= max(a.Token(), b.Token()) {
		t.Errorf("third token %d after %d and %d", r.slot.Token(), a.Token(), b.Token())
	}
}

// Closing the request that holds a slot, without a release request,
// gives the slot back: the waiter gets it.
func TestSemaClosingTheRequestReleasesTheSlot(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://graft/v1/sema/db?count=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var first api.SemaLine
	if err := json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&first); err != nil || !first.Granted || first.Token == 0 {
		t.Fatalf("first line %+v, %v", first, err)
	}
	waiter := acquireAsync(t.Context(), f.client, "db", 1)
	waitUntil(t, semaWait, "a waiter queued", func() bool { return len(f.semaState("db").Waiters) == 1 })
	resp.Body.Close()
	cancel()
	r := result(t, waiter)
	if r.err != nil {
		t.Fatalf("the waiter: %v", r.err)
	}
	defer r.slot.Release(context.Background())
	if r.slot.Token() <= first.Token {
		t.Errorf("token %d after %d", r.slot.Token(), first.Token)
	}
}

// A waiter whose context ends leaves the queue: it takes no slot later.
func TestSemaCancelledWaitLeavesTheQueue(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	holder := mustAcquire(t, f.client, "db", 1)
	ctx, cancel := context.WithCancel(t.Context())
	waiter := acquireAsync(ctx, f.client, "db", 1)
	waitUntil(t, semaWait, "a waiter queued", func() bool { return len(f.semaState("db").Waiters) == 1 })
	cancel()
	if r := result(t, waiter); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled wait: %v, want context.Canceled", r.err)
	}
	waitUntil(t, semaWait, "the queue empty", func() bool { return len(f.semaState("db").Waiters) == 0 })
	if err := holder.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := f.semaState("db"); len(st.Holders) != 0 {
		t.Errorf("holders after the release %+v: the cancelled waiter was granted", st.Holders)
	}
}

// The server refuses a semaphore request beyond its cap with 429, and
// takes one again once a request has ended.
func TestSemaCapRefusesOneRequestTooMany(t *testing.T) {
	f := newFixture(t, fixtureOpts{maxSema: 2})
	holder := mustAcquire(t, f.client, "db", 1)
	waiter := acquireAsync(t.Context(), f.client, "db", 1)
	waitUntil(t, semaWait, "a waiter queued", func() bool { return len(f.semaState("db").Waiters) == 1 })
	_, err := f.client.Acquire(t.Context(), "other", 1)
	if api.StatusCode(err) != http.StatusTooManyRequests || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("a third request: %v, want 429 saying at most 2", err)
	}
	if err := holder.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := result(t, waiter)
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.slot.Release(context.Background())
	mustAcquire(t, f.client, "other", 1)
}

// Bad parameters answer 400 naming the parameter; a count that differs
// from the holders' answers 409.
func TestSemaBadParametersAre400(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	long := strings.Repeat("x", fsm.MaxNameSize+1)
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/v1/sema/db?count=0", "count="},
		{"POST", "/v1/sema/db?count=-1", "count="},
		{"POST", "/v1/sema/db?count=two", "count="},
		{"POST", "/v1/sema/db?count=1048577", "count="},
		{"POST", "/v1/sema/", "id:"},
		{"POST", "/v1/sema/" + long, "id:"},
		{"POST", "/v1/sema/%ff", "id:"},
		{"DELETE", "/v1/sema/db?token=x", "token="},
		{"DELETE", "/v1/sema/db", "token="},
	} {
		code, _, body := rawRequest(t, f, c.method, c.path, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want 400 naming %q", c.method, c.path, code, body, c.want)
		}
	}
	code, _, body := rawRequest(t, f, "POST", "/v1/sema/db", strings.NewReader("x"))
	if code != http.StatusBadRequest || !strings.Contains(body, "no body") {
		t.Errorf("a body: %d %s", code, body)
	}
	code, _, body = rawRequest(t, f, "DELETE", "/v1/sema/db?token=12345", nil)
	if code != http.StatusNotFound {
		t.Errorf("release of a slot not held: %d %s, want 404", code, body)
	}
	mustAcquire(t, f.client, "db", 2)
	_, err := f.client.Acquire(t.Context(), "db", 3)
	if api.StatusCode(err) != http.StatusConflict || !strings.Contains(err.Error(), "count 2") {
		t.Errorf("another count than the holder's: %v, want 409 naming count 2", err)
	}
}

// A slot the cluster takes back (it declared the host dead) ends its
// stream with a lost line: the client's Lost closes, and Err says why.
func TestSemaSlotTakenBackByTheClusterIsLost(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := mustAcquire(t, f.client, "db", 1)
	if s.Err() != nil {
		t.Fatalf("Err of a held slot: %v", s.Err())
	}
	if _, err := f.cluster.Members[0].Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpExpireNode, Node: f.world.Host()}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Lost():
	case <-time.After(semaWait):
		t.Fatal("Lost not closed after the cluster took the slot back")
	}
	if err := s.Err(); !errors.Is(err, api.ErrSlotLost) || !strings.Contains(err.Error(), "the agent says") {
		t.Errorf("Err: %v", err)
	}
	if err := s.Release(t.Context()); err != nil {
		t.Errorf("release of a lost slot: %v", err)
	}
}

// A held slot's stream announces its keepalive interval and then carries
// keepalive lines, by which a client tells a live agent from a frozen one.
func TestSemaHeldStreamCarriesKeepalives(t *testing.T) {
	f := newFixture(t, fixtureOpts{keepalive: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), semaWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://graft/v1/sema/db", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(resp.Body)
	var first api.SemaLine
	if err := dec.Decode(&first); err != nil || !first.Granted || first.KeepaliveMS != 20 || first.Count != 1 || first.ID != "db" {
		t.Fatalf("first line %+v, %v", first, err)
	}
	for i := range 3 {
		var l api.SemaLine
		if err := dec.Decode(&l); err != nil || !l.Keepalive {
			t.Fatalf("line %d: %+v, %v; want a keepalive", i+2, l, err)
		}
	}
}

// An agent that stops ends its holds with a lost line and gives the slots
// back.
func TestSemaAgentStoppingLosesAndReleasesTheSlot(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := mustAcquire(t, f.client, "db", 1)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Lost():
	case <-time.After(semaWait):
		t.Fatal("Lost not closed when the agent stopped")
	}
	if !strings.Contains(s.Err().Error(), "stopping") {
		t.Errorf("Err: %v", s.Err())
	}
	waitUntil(t, semaWait, "the slot given back", func() bool { return len(f.semaState("db").Holders) == 0 })
}
