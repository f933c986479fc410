package server

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
	"github.com/graftcm/graft/cluster"
)

// A join hands the addresses to the cluster and answers how many
// answered; bad bodies are 400, a join nobody answered 502.
func TestJoin(t *testing.T) {
	fc := &apitest.FakeCluster{}
	f := newFixture(t, fixtureOpts{cluster: fc})
	n, err := f.client.Join(t.Context(), []string{"10.0.0.2:7946", "10.0.0.3:7946"})
	if err != nil || n != 2 {
		t.Fatalf("join: %d, %v", n, err)
	}
	if want := [][]string{{"10.0.0.2:7946", "10.0.0.3:7946"}}; !reflect.DeepEqual(fc.Joined(), want) {
		t.Errorf("the cluster was asked to join %q, want %q", fc.Joined(), want)
	}
	for _, body := range []string{``, `{}`, `{"addrs": []}`, `{"addrs": [""]}`, `{"addrs": "x"}`, `{"adrs": ["x"]}`} {
		code, _, resp := rawRequest(t, f, "POST", "/v1/join", strings.NewReader(body))
		if code != http.StatusBadRequest || !strings.Contains(resp, `"error"`) {
			t.Errorf("join with body %q: %d %s, want 400", body, code, resp)
		}
	}
	if len(fc.Joined()) != 1 {
		t.Errorf("bad requests reached the cluster: %q", fc.Joined())
	}
	fc.JoinErr = errors.New("no installed keys could decrypt the message")
	_, err = f.client.Join(t.Context(), []string{"10.0.0.9:7946"})
	if api.StatusCode(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "could decrypt") {
		t.Errorf("a failed join: %v (status %d), want 502 with the reason", err, api.StatusCode(err))
	}
}

// Members are served as the cluster lists them, in api.MemberInfo's JSON
// form.
func TestMembers(t *testing.T) {
	contact := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fc := &apitest.FakeCluster{Nodes: []cluster.MemberInfo{
		{Name: "a", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947", Gossip: "alive", Role: "leader"},
		{Name: "b", RaftAddr: "10.0.0.2:7947", Gossip: "left", Role: "none", LastContact: contact},
	}}
	f := newFixture(t, fixtureOpts{cluster: fc})
	ms, err := f.client.Members(t.Context())
	want := []api.MemberInfo{
		{Name: "a", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947", Gossip: "alive", Role: "leader"},
		{Name: "b", RaftAddr: "10.0.0.2:7947", Gossip: "left", Role: "none", LastContact: contact},
	}
	if err != nil || !reflect.DeepEqual(ms, want) {
		t.Errorf("members: %+v, %v; want %+v", ms, err, want)
	}
	_, _, body := rawRequest(t, f, "GET", "/v1/members", nil)
	for _, want := range []string{`"gossip_address":"10.0.0.1:7946"`, `"raft_address":"10.0.0.2:7947"`, `"gossip":"left"`, `"role":"leader"`, `"last_contact":"2026-01-01T12:00:00Z"`} {
		if !strings.Contains(body, want) {
			t.Errorf("members JSON lacks %s: %s", want, body)
		}
	}
	fc.Nodes = nil
	if _, _, body := rawRequest(t, f, "GET", "/v1/members", nil); strings.TrimSpace(body) != "[]" {
		t.Errorf("no members: %s, want []", body)
	}
}

// A leave says at once that the agent took the request, then, once the
// agent has left, that it left; a second leave gets the same answer.
func TestLeaveSaysItTookTheRequestThenHowItWent(t *testing.T) {
	asked := make(chan struct{}, 2)
	left := make(chan struct{})
	f := newFixture(t, fixtureOpts{cluster: &apitest.FakeCluster{}, leave: func(ctx context.Context) error {
		asked <- struct{}{}
		select {
		case <-left:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	accepted := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.client.Leave(t.Context(), func() { close(accepted) }) }()
	select {
	case <-accepted:
	case err := <-done:
		t.Fatalf("leave returned %v before the agent left", err)
	}
	<-asked
	close(left)
	if err := <-done; err != nil {
		t.Errorf("leave: %v", err)
	}
	if err := f.client.Leave(t.Context(), nil); err != nil {
		t.Errorf("a second leave: %v", err)
	}
	if code, _, _ := rawRequest(t, f, "GET", "/v1/leave", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/leave: %d, want 405", code)
	}
}

// Issue 9, item 7 (second review): a leave taken while the agent's
// cluster side restarted waited for an outcome that comes only once the
// restart is over, and the restart, closing the old side's API, waited
// for the leave: both hung for the API's request timeout and a second
// (11 s). An API that closes stops waiting for the leave and says so.
func TestAnAPIThatClosesDoesNotWaitForALeaveWaitingOnTheAgent(t *testing.T) {
	f := newFixture(t, fixtureOpts{cluster: &apitest.FakeCluster{}, leave: func(ctx context.Context) error {
		<-ctx.Done() // the agent says how the leave went only once the API is gone
		return ctx.Err()
	}})
	accepted := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.client.Leave(t.Context(), func() { close(accepted) }) }()
	select {
	case <-accepted:
	case err := <-done:
		t.Fatalf("leave returned %v before it was taken", err)
	}
	start := time.Now()
	if err := f.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the API took %v to close, waiting for the leave", took.Round(100*time.Millisecond))
	}
	if err := <-done; !errors.Is(err, api.ErrLeaveFailed) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("leave: %v, want ErrLeaveFailed saying the API closed", err)
	}
}

// Issue 9, item 7 (third review): an agent that said its leave failed
// and closed its API at once had the API answer that it closed, the
// failure's reason lost. The reason reaches the client.
func TestALeaveFailureIsNotMaskedByTheAPIClosing(t *testing.T) {
	f := newFixture(t, fixtureOpts{cluster: &apitest.FakeCluster{}, leave: func(ctx context.Context) error {
		<-ctx.Done() // the agent closes the API as it says how the leave went
		return errors.New("leaving took longer than 10s")
	}})
	accepted := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.client.Leave(t.Context(), func() { close(accepted) }) }()
	select {
	case <-accepted:
	case err := <-done:
		t.Fatalf("leave returned %v before it was taken", err)
	}
	if err := f.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if err := <-done; !errors.Is(err, api.ErrLeaveFailed) || !strings.Contains(err.Error(), "took longer than 10s") {
		t.Errorf("leave: %v, want ErrLeaveFailed with the agent's reason", err)
	}
}

// `graft leave` said "has left and stopped" even when the leave was
// refused: a leave that fails is reported, with its reason.
func TestLeaveThatFailsSaysWhy(t *testing.T) {
	f := newFixture(t, fixtureOpts{cluster: &apitest.FakeCluster{}, leave: func(context.Context) error {
		return errors.New("removing it would leave the voters without a quorum")
	}})
	err := f.client.Leave(t.Context(), nil)
	if !errors.Is(err, api.ErrLeaveFailed) || !strings.Contains(err.Error(), "without a quorum") {
		t.Errorf("leave: %v, want ErrLeaveFailed with the reason", err)
	}
}

// Without a Cluster or Leave, the membership endpoints answer 501 and
// status has no cluster fields.
func TestMembershipNotServed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if _, err := f.client.Join(t.Context(), []string{"x:1"}); api.StatusCode(err) != http.StatusNotImplemented {
		t.Errorf("join: %v, want 501", err)
	}
	if _, err := f.client.Members(t.Context()); api.StatusCode(err) != http.StatusNotImplemented {
		t.Errorf("members: %v, want 501", err)
	}
	if err := f.client.Leave(t.Context(), nil); api.StatusCode(err) != http.StatusNotImplemented {
		t.Errorf("leave: %v, want 501", err)
	}
	_, _, body := rawRequest(t, f, "GET", "/v1/status", nil)
	for _, k := range []string{"cluster_id", "gossip_address", "key_fingerprint"} {
		if strings.Contains(body, k) {
			t.Errorf("status of an agent without membership has %q: %s", k, body)
		}
	}
}

// Status carries the cluster ID, the gossip address and the key's
// fingerprint.
func TestStatusHasClusterIdentity(t *testing.T) {
	f := newFixture(t, fixtureOpts{cluster: &apitest.FakeCluster{}, fingerprint: "9dd8e404"})
	st, err := f.client.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.ClusterID != "c1d" || st.GossipAddr != "10.0.0.1:7946" || st.KeyFingerprint != "9dd8e404" || st.Host == "" {
		t.Errorf("status: %+v", st)
	}
}

// A browser on this host cannot drive the agent: cross-site requests that
// change things are refused (a page posting to a loopback API address).
func TestCrossSiteRequestsRefused(t *testing.T) {
	fc := &apitest.FakeCluster{}
	f := newFixture(t, fixtureOpts{cluster: fc})
	for _, path := range []string{"/v1/join", "/v1/leave", "/v1/kv/k"} {
		method := "POST"
		if path == "/v1/kv/k" {
			method = "PUT"
		}
		req, err := http.NewRequestWithContext(t.Context(), method, "http://graft"+path, strings.NewReader(`{"addrs":["x:1"]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		resp, err := f.raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site %s %s: status %d, want 403", method, path, resp.StatusCode)
		}
	}
	if len(fc.Joined()) != 0 {
		t.Error("a cross-site join reached the cluster")
	}
}

// A watch request carrying a body is refused: net/http would not notice its
// client leave until the body was read.
func TestWatchWithBodyRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	code, _, body := rawRequest(t, f, "GET", "/v1/watch?prefix=a", strings.NewReader("x"))
	if code != http.StatusBadRequest || !strings.Contains(body, "no body") {
		t.Errorf("watch with a body: %d %s, want 400", code, body)
	}
}
