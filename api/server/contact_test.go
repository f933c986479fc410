package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// noLeaderStore is a Store whose linearizable reads hang until their
// context ends, as they do in a cluster without a leader.
type noLeaderStore struct {
	Store
	linearizable atomic.Int32 // linearizable reads asked for
}

func (s *noLeaderStore) wait(ctx context.Context, opts []world.ReadOption) error {
	if len(opts) == 0 {
		return nil
	}
	s.linearizable.Add(1)
	<-ctx.Done()
	return fmt.Errorf("%w: %w", raftnode.ErrNoLeader, ctx.Err())
}

func (s *noLeaderStore) Get(ctx context.Context, key string, opts ...world.ReadOption) (fsm.KV, bool, error) {
	if err := s.wait(ctx, opts); err != nil {
		return fsm.KV{}, false, err
	}
	return s.Store.Get(ctx, key)
}

func (s *noLeaderStore) List(ctx context.Context, prefix string, opts ...world.ReadOption) ([]fsm.KV, uint64, error) {
	if err := s.wait(ctx, opts); err != nil {
		return nil, 0, err
	}
	return s.Store.List(ctx, prefix)
}

// checkContact checks a reported contact: last heard from a leader at
// least ago and at most ago plus elapsed before the read (-1: never), and
// whether a leader is known.
func checkContact(t *testing.T, what string, c *api.Contact, ago, elapsed time.Duration, never, known bool) {
	t.Helper()
	switch {
	case c == nil:
		t.Errorf("%s: no contact reported", what)
	case never && c.LastContactMS != -1:
		t.Errorf("%s: last contact %d ms, want -1 (never)", what, c.LastContactMS)
	case !never && (c.LastContactMS < ago.Milliseconds() || c.LastContactMS > (ago+elapsed).Milliseconds()):
		t.Errorf("%s: last contact %d ms, want %v to %v", what, c.LastContactMS, ago, ago+elapsed)
	case c.KnownLeader != known:
		t.Errorf("%s: known leader %t, want %t", what, c.KnownLeader, known)
	}
}

// firstLine sends a GET and returns the answer's status, headers and first
// line of body.
func firstLine(t *testing.T, f *fixture, path string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://graft"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return resp.StatusCode, resp.Header, line
}

// A node cut off from its leader, caught up since it started, answers
// local reads at once from its own state, though no linearizable read has
// succeeded and none could; every answer says how long ago the node heard
// from a leader, in headers and in the JSON body.
func TestLocalReadsAnswerAtOnceWithoutLeaderOnceCaughtUp(t *testing.T) {
	store := &noLeaderStore{}
	node := &apitest.FakeNode{}
	const ago = 25 * time.Second
	f := newFixture(t, fixtureOpts{store: func(s Store) Store { store.Store = s; return store }, node: node, timeout: 2 * time.Second})
	ctx := t.Context()
	if _, err := f.world.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	set := time.Now()
	node.SetLeader(set.Add(-ago), "")

	var info api.ReadInfo
	kv, ok, err := f.client.Get(ctx, "k", api.ReportInfo(&info))
	if err != nil || !ok || string(kv.Value) != "v" {
		t.Fatalf("local get without a leader: %+v, %t, %v", kv, ok, err)
	}
	checkContact(t, "get", info.Contact, ago, time.Since(set), false, false)
	info = api.ReadInfo{}
	if _, ok, err := f.client.Get(ctx, "missing", api.ReportInfo(&info)); ok || err != nil {
		t.Fatalf("get of a missing key: %t, %v", ok, err)
	}
	checkContact(t, "get of a missing key", info.Contact, ago, time.Since(set), false, false)
	info = api.ReadInfo{}
	kvs, _, err := f.client.List(ctx, "", api.ReportInfo(&info))
	if err != nil || len(kvs) != 1 {
		t.Fatalf("local list without a leader: %v, %v", kvs, err)
	}
	checkContact(t, "list", info.Contact, ago, time.Since(set), false, false)
	w, err := f.client.Watch(ctx, "", 0)
	if err != nil {
		t.Fatalf("watch from now without a leader: %v", err)
	}
	w.Close()
	checkContact(t, "watch", w.Contact(), ago, time.Since(set), false, false)
	if n := store.linearizable.Load(); n != 0 {
		t.Errorf("%d linearizable reads asked for; want every read local", n)
	}

	// The same, as a script sees it.
	for _, path := range []string{"/v1/kv/k", "/v1/kv?prefix=", "/v1/watch"} {
		code, h, line := firstLine(t, f, path)
		var body struct {
			LastContactMS *int64 `json:"last_contact_ms"`
			KnownLeader   *bool  `json:"known_leader"`
		}
		if err := json.Unmarshal([]byte(line), &body); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %q: %v", path, code, line, err)
		}
		ms, err := strconv.ParseInt(h.Get(api.HeaderLastContact), 10, 64)
		if err != nil || ms < ago.Milliseconds() || h.Get(api.HeaderKnownLeader) != "false" {
			t.Errorf("GET %s: headers %s=%q %s=%q", path, api.HeaderLastContact, h.Get(api.HeaderLastContact), api.HeaderKnownLeader, h.Get(api.HeaderKnownLeader))
		}
		if body.LastContactMS == nil || *body.LastContactMS < ago.Milliseconds() || body.KnownLeader == nil || *body.KnownLeader {
			t.Errorf("GET %s: body %s lacks the contact", path, line)
		}
	}

	// Never in touch, and on the leader.
	node.SetLeader(time.Time{}, "")
	info = api.ReadInfo{}
	f.client.Get(ctx, "k", api.ReportInfo(&info))
	checkContact(t, "get, never in touch", info.Contact, 0, 0, true, false)
	set = time.Now()
	node.SetLeader(set, "node0")
	info = api.ReadInfo{}
	f.client.Get(ctx, "k", api.ReportInfo(&info))
	checkContact(t, "get on the leader", info.Contact, 0, time.Since(set), false, true)
}

// Until the node has caught up (and no linearizable read has succeeded),
// reads are linearizable, so without a leader they fail; once it has, they
// are local.
func TestReadsAreLinearizableUntilTheNodeCaughtUp(t *testing.T) {
	store := &noLeaderStore{}
	node := &apitest.FakeNode{}
	node.SetCaughtUp(false)
	f := newFixture(t, fixtureOpts{store: func(s Store) Store { store.Store = s; return store }, node: node, timeout: 200 * time.Millisecond})
	ctx := t.Context()
	if _, err := f.world.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.client.Get(ctx, "k"); api.StatusCode(err) != http.StatusServiceUnavailable {
		t.Errorf("get before the node caught up: %v (status %d), want 503", err, api.StatusCode(err))
	}
	if _, err := f.client.Watch(ctx, "", 0); api.StatusCode(err) != http.StatusServiceUnavailable {
		t.Errorf("watch from now before the node caught up: %v (status %d), want 503", err, api.StatusCode(err))
	}
	node.SetCaughtUp(true)
	if kv, ok, err := f.client.Get(ctx, "k"); err != nil || !ok || string(kv.Value) != "v" {
		t.Errorf("get once the node caught up: %+v, %t, %v", kv, ok, err)
	}
}

// In a real cluster that lost its quorum, a node that has served no
// linearizable read yet answers local reads and watches at once, and says
// it knows no leader.
func TestLocalReadsWorkAfterQuorumLossBeforeAnyLinearizableRead(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, realNode: true, timeout: 300 * time.Millisecond})
	ctx := t.Context()
	if _, err := f.world.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.cluster.Members[1:] {
		f.cluster.Kill(m)
	}
	node := f.cluster.Members[0].Node()
	waitUntil(t, 10*time.Second, "member 0 to lose its leader", func() bool {
		id, _ := node.Leader()
		return id == "" && !node.IsLeader()
	})
	var info api.ReadInfo
	if kv, ok, err := f.client.Get(ctx, "before", api.ReportInfo(&info)); err != nil || !ok || string(kv.Value) != "1" {
		t.Fatalf("local get without a quorum: %+v, %t, %v", kv, ok, err)
	}
	if c := info.Contact; c == nil || c.KnownLeader || c.LastContactMS < 0 {
		t.Errorf("contact without a quorum: %+v, want a known last contact and no leader", c)
	}
	if _, _, err := f.client.List(ctx, ""); err != nil {
		t.Errorf("local list without a quorum: %v", err)
	}
	w, err := f.client.Watch(ctx, "", 0)
	if err != nil {
		t.Fatalf("watch from now without a quorum: %v", err)
	}
	w.Close()
}
