package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// Keys that need escaping in a path (slashes, dots, spaces, '?', '#',
// '%') and values that are not UTF-8 all round-trip.
func TestKeysAndValuesRoundTrip(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	cases := map[string][]byte{
		"plain":            []byte("1"),
		"a/b/c":            []byte("nested"),
		"a//b":             []byte("double slash"),
		"/leading":         []byte("leading slash"),
		"trailing/":        []byte("trailing slash"),
		".":                []byte("dot"),
		"..":               []byte("dotdot"),
		"a/../b":           []byte("dot segment"),
		"sp ace?q=1#frag%": []byte("odd characters"),
		"héllo":            []byte("unicode key"),
		"binary":           {0xff, 0x00, 0xfe, '\n'},
		"empty":            {},
		"multi\nline":      []byte("line one\nline two\n"),
	}
	for k, v := range cases {
		rev, err := f.client.Put(ctx, k, v)
		if err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		if rev == 0 {
			t.Errorf("put %q: revision 0", k)
		}
	}
	for k, want := range cases {
		kv, ok, err := f.client.Get(ctx, k)
		if err != nil || !ok {
			t.Fatalf("get %q: %v, found %v", k, err, ok)
		}
		if kv.Key != k || !bytes.Equal(kv.Value, want) {
			t.Errorf("get %q: got %q=%q, want %q", k, kv.Key, kv.Value, want)
		}
		if kv.Version != 1 || kv.CreateRev == 0 || kv.ModRev != kv.CreateRev {
			t.Errorf("get %q: revisions %+v", k, kv)
		}
		// The World holds exactly what was sent, under exactly that key.
		wkv, ok, _ := f.world.Get(ctx, k)
		if !ok || !bytes.Equal(wkv.Value, want) {
			t.Errorf("world has %q=%q (found %v), want %q", k, wkv.Value, ok, want)
		}
	}
	kvs, rev, err := f.client.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != len(cases) || rev != f.world.Rev() {
		t.Errorf("list: %d keys at rev %d, want %d at %d", len(kvs), rev, len(cases), f.world.Rev())
	}
	for i := 1; i < len(kvs); i++ {
		if kvs[i-1].Key >= kvs[i].Key {
			t.Errorf("list not sorted: %q before %q", kvs[i-1].Key, kvs[i].Key)
		}
	}
	for k := range cases {
		if _, err := f.client.Delete(ctx, k); err != nil {
			t.Fatalf("delete %q: %v", k, err)
		}
		if _, ok, err := f.client.Get(ctx, k); ok || err != nil {
			t.Errorf("get %q after delete: found %v, %v", k, ok, err)
		}
	}
}

func TestListByPrefixAndLinearizable(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := t.Context()
	for _, k := range []string{"app/a", "app/b", "apple", "other"} {
		if _, err := f.client.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	kvs, _, err := f.client.List(ctx, "app/", api.Linearizable())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key)
	}
	if fmt.Sprint(got) != "[app/a app/b]" {
		t.Errorf("list app/: got %v", got)
	}
	kvs, _, err = f.client.List(ctx, "nothing/")
	if err != nil || len(kvs) != 0 {
		t.Errorf("list of an empty prefix: %v, %v", kvs, err)
	}
	kv, ok, err := f.client.Get(ctx, "apple", api.Linearizable())
	if err != nil || !ok || string(kv.Value) != "apple" {
		t.Errorf("linearizable get: %+v, %v, %v", kv, ok, err)
	}
}

// rawRequest sends a request over the fixture's socket and returns the
// status, the Content-Type and the body.
func rawRequest(t *testing.T, f *fixture, method, path string, body io.Reader) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://graft"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(raw)
}

// Every failure answers a JSON error body with the documented status.
func TestErrorsAreJSONWithStatus(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	big := strings.Repeat("x", fsm.MaxValueSize+1)
	cases := []struct {
		method, path string
		body         io.Reader
		code         int
		msg          string
	}{
		{"GET", "/v1/kv/missing", nil, 404, `key "missing" not found`},
		{"GET", "/v1/kv/", nil, 400, "empty key"},
		{"PUT", "/v1/kv/", strings.NewReader("x"), 400, "empty key"},
		{"PUT", "/v1/kv/_graft/x", strings.NewReader("x"), 400, "_graft/"},
		{"DELETE", "/v1/kv/_graft/sema/x", nil, 400, "_graft/"},
		{"PUT", "/v1/kv/big", strings.NewReader(big), 413, "value too large"},
		{"PUT", "/v1/kv/" + strings.Repeat("k", fsm.MaxKeySize+1), strings.NewReader("x"), 400, "key of"},
		{"PUT", "/v1/kv/%FF", strings.NewReader("x"), 400, "not valid UTF-8"},
		{"GET", "/v1/kv/a?linearizable=maybe", nil, 400, "linearizable"},
		{"GET", "/v1/kv?linearizable=2", nil, 400, "linearizable"},
		{"GET", "/v1/watch?rev=-1", nil, 400, "rev"},
		{"GET", "/v1/nothing", nil, 404, "no such endpoint"},
		{"POST", "/v1/kv/a", nil, 405, "does not take POST"},
		{"DELETE", "/v1/status", nil, 405, "does not take DELETE"},
	}
	for _, tc := range cases {
		code, ctype, body := rawRequest(t, f, tc.method, tc.path, tc.body)
		var eb api.ErrorBody
		if err := json.Unmarshal([]byte(body), &eb); err != nil || ctype != "application/json" {
			t.Errorf("%s %.40s: body %q (%s) is not a JSON error: %v", tc.method, tc.path, body, ctype, err)
			continue
		}
		if code != tc.code || !strings.Contains(eb.Error, tc.msg) {
			t.Errorf("%s %.40s: %d %q, want %d and %q", tc.method, tc.path, code, eb.Error, tc.code, tc.msg)
		}
	}
	// A value of exactly the limit is fine.
	if _, err := f.client.Put(t.Context(), "max", bytes.Repeat([]byte("y"), fsm.MaxValueSize)); err != nil {
		t.Errorf("put of %d bytes: %v", fsm.MaxValueSize, err)
	}
	// The client reports the status and the message.
	_, err := f.client.Put(t.Context(), "_graft/x", []byte("v"))
	if api.StatusCode(err) != 400 || !strings.Contains(err.Error(), "_graft/") {
		t.Errorf("client put of a reserved key: %v (status %d)", err, api.StatusCode(err))
	}
}

func TestStatusReportsLeaderHostAndVersion(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if _, err := f.client.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// Raft records an entry as applied after handing it to the FSM, which
	// may apply it, and answer the write, first: for a moment the revision
	// can be ahead of raft's applied index.
	var st api.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = f.client.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st.AppliedIndex >= st.Revision || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Host != "node0" || st.Version != "v-test" || st.ID != "node0" || st.State != "Leader" || st.Leader != "node0" {
		t.Errorf("status: %+v", st)
	}
	if st.Revision != f.world.Rev() || st.Term == 0 || st.AppliedIndex < st.Revision || len(st.Servers) != 1 {
		t.Errorf("status numbers: %+v", st)
	}
	// The cluster's fields are at the top level of the JSON.
	_, _, body := rawRequest(t, f, "GET", "/v1/status", nil)
	var flat map[string]any
	if err := json.Unmarshal([]byte(body), &flat); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"host", "version", "id", "state", "leader", "term", "commit_index", "revision", "servers"} {
		if _, ok := flat[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, body)
		}
	}
}

// With no leader, writes and linearizable reads answer 503 within the
// request timeout; local reads still work once the server has caught up.
func TestNoLeaderIs503(t *testing.T) {
	f := newFixture(t, fixtureOpts{nodes: 3, timeout: 300 * time.Millisecond})
	ctx := t.Context()
	if _, err := f.client.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// The server's first read is linearizable (it has caught up from then
	// on), so local reads are local.
	if _, _, err := f.client.Get(ctx, "before"); err != nil {
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
	_, err := f.client.Put(ctx, "k", []byte("v"))
	if api.StatusCode(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no leader") {
		t.Errorf("put without a leader: %v (status %d), want 503", err, api.StatusCode(err))
	}
	_, _, err = f.client.Get(ctx, "before", api.Linearizable())
	if api.StatusCode(err) != http.StatusServiceUnavailable {
		t.Errorf("linearizable get without a leader: %v (status %d), want 503", err, api.StatusCode(err))
	}
	if kv, ok, err := f.client.Get(ctx, "before"); err != nil || !ok || string(kv.Value) != "1" {
		t.Errorf("local get without a leader: %+v, %v, %v", kv, ok, err)
	}
}

// waitUntil polls cond until it holds, failing after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func TestStatusFor(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{badf("bad"), 400},
		{world.ErrReserved, 400},
		{fmt.Errorf("put: %w", &world.RefusedError{Reason: "key too large"}), 400},
		{fmt.Errorf("%w: %w", raftnode.ErrNoLeader, context.DeadlineExceeded), 503},
		{raftnode.ErrClosed, 503},
		{fmt.Errorf("%w: %w", raftnode.ErrAmbiguous, context.Canceled), 504},
		{context.DeadlineExceeded, 504},
		{fmt.Errorf("put: %w", raftnode.ErrNoSpace), 507},
		{errors.New("disk on fire"), 500},
	}
	for _, tc := range cases {
		if got := statusFor(tc.err); got != tc.want {
			t.Errorf("statusFor(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// Over TCP, a request must name a loopback host (no DNS rebinding).
func TestTCPRequestsMustNameLoopbackHost(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	srv, err := NewServer(Config{Store: f.world, Status: f.cluster.Members[0].Node().Status})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := api.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv, ln)
	addr := ln.Addr().String()
	c, err := api.NewClient("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("put over TCP: %v", err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for host, want := range map[string]int{
		addr: 200, "localhost:1": 200, "[::1]:80": 200, "127.0.0.2": 200,
		"evil.example:80": 403, "evil.example": 403, "10.0.0.1:80": 403,
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/v1/kv/k", nil)
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// Serve stops, closing its listeners, when its context ends.
func TestServeStopsAndRemovesSocket(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if err := f.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("unix", f.sock); err == nil {
		t.Error("the socket still answers after Serve returned")
	}
	_, err := f.client.Status(t.Context())
	if !errors.Is(err, api.ErrNoAgent) || !strings.Contains(err.Error(), f.sock) {
		t.Errorf("client of a stopped server: %v, want ErrNoAgent naming %s", err, f.sock)
	}
}

// readSpy counts the read options the server reads with.
type readSpy struct {
	Store
	mu   sync.Mutex
	opts []int
}

func (s *readSpy) Get(ctx context.Context, key string, opts ...world.ReadOption) (fsm.KV, bool, error) {
	s.mu.Lock()
	s.opts = append(s.opts, len(opts))
	s.mu.Unlock()
	return s.Store.Get(ctx, key, opts...)
}

// Until one linearizable read has succeeded, reads are linearizable: a
// restarted agent must not answer from the state it had before.
func TestReadsAreLinearizableUntilCaughtUp(t *testing.T) {
	spy := &readSpy{}
	f := newFixture(t, fixtureOpts{store: func(s Store) Store { spy.Store = s; return spy }})
	ctx := t.Context()
	f.client.Get(ctx, "k")
	f.client.Get(ctx, "k")
	f.client.Get(ctx, "k", api.Linearizable())
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if fmt.Sprint(spy.opts) != "[1 0 1]" {
		t.Errorf("read options per get: %v, want [1 0 1] (linearizable, local, linearizable)", spy.opts)
	}
}
