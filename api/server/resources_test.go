package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

// GET /v1/resources answers what Config.Resources returns at the time of
// the request, under this host's name, with the documented JSON fields.
func TestResourcesServesCurrentSnapshot(t *testing.T) {
	var cur atomic.Pointer[api.Resources]
	cur.Store(&api.Resources{Graph: "g1"})
	f := newFixture(t, fixtureOpts{resources: func() api.Resources { return *cur.Load() }})

	got, err := f.client.Resources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	host := f.cluster.Members[0].ID
	if want := (api.Resources{Host: host, Graph: "g1", Resources: []api.Resource{}}); !reflect.DeepEqual(got, want) {
		t.Errorf("before any resource: got %+v, want %+v", got, want)
	}

	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	next := api.Resources{Graph: "g2", Converged: true, Counts: api.ResourceCounts{Total: 2, OK: 1, Failed: 1, Changed: 1},
		Resources: []api.Resource{
			{Kind: "exec", Name: "bad", State: "failed", Error: "exit status 1", LastStart: started,
				LastDurationSeconds: 0.25, RetriesLeft: 0, SemaWaiting: []string{"@@deploy"}},
			{Kind: "file", Name: "/etc/motd", State: "ok", LastStart: started, Changed: true, Changes: 1, RetriesLeft: -1},
		}}
	cur.Store(&next)
	if got, err = f.client.Resources(t.Context()); err != nil {
		t.Fatal(err)
	}
	next.Host = host
	if !reflect.DeepEqual(got, next) {
		t.Errorf("got %+v, want %+v", got, next)
	}

	code, ctype, body := rawRequest(t, f, http.MethodGet, "/v1/resources", nil)
	var raw struct {
		Host      string           `json:"host"`
		Converged bool             `json:"converged"`
		Counts    map[string]int   `json:"counts"`
		Resources []map[string]any `json:"resources"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil || code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("raw answer: %d %s %q: %v", code, ctype, body, err)
	}
	bad := raw.Resources[0]
	if raw.Host != host || !raw.Converged || raw.Counts["failed"] != 1 || raw.Counts["total"] != 2 ||
		bad["state"] != "failed" || bad["error"] != "exit status 1" || bad["retries_left"] != 0.0 ||
		bad["last_duration_seconds"] != 0.25 || bad["last_start"] != "2026-01-02T03:04:05Z" {
		t.Errorf("JSON fields: %s", body)
	}
}

// Without Config.Resources the endpoint answers 501; other methods 405.
func TestResourcesNotServedWithoutEngine(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if _, err := f.client.Resources(t.Context()); api.StatusCode(err) != http.StatusNotImplemented {
		t.Errorf("got %v, want 501", err)
	}
	if code, _, body := rawRequest(t, f, http.MethodPost, "/v1/resources", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s, want 405", code, body)
	}
}

// GET /v1/graph answers what Config.Graph returns at the time of the
// request, under this host's name, with the documented JSON fields; empty
// lists are lists, not null; without Config.Graph it answers 501.
func TestGraphServesCurrentGraph(t *testing.T) {
	var cur atomic.Pointer[api.Graph]
	cur.Store(&api.Graph{Graph: "g1"})
	f := newFixture(t, fixtureOpts{graph: func() api.Graph { return *cur.Load() }})
	host := f.cluster.Members[0].ID

	code, _, body := rawRequest(t, f, http.MethodGet, "/v1/graph", nil)
	if want := `{"host":"` + host + `","graph":"g1","converged":false,"vertices":[],"edges":[]}`; code != http.StatusOK ||
		strings.TrimSpace(body) != want {
		t.Errorf("before any resource: %d %s, want %s", code, body, want)
	}

	next := api.Graph{Graph: "g2", Converged: true,
		Vertices: []api.GraphVertex{
			{Kind: "noop", Name: "a", State: "ok", Members: []api.ResourceID{{Kind: "noop", Name: "a"}, {Kind: "noop", Name: "b"}}},
			{Kind: "password", Name: "p", State: "waiting", Waiting: "dependencies"},
		},
		Edges: []api.GraphEdge{
			{From: api.ResourceID{Kind: "noop", Name: "a"}, To: api.ResourceID{Kind: "password", Name: "p"}, Notify: true,
				Keys: []api.GraphKey{{Send: "out", Recv: "in"}}},
		}}
	cur.Store(&next)
	got, err := f.client.Graph(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	next.Host = host
	if !reflect.DeepEqual(got, next) {
		t.Errorf("got %+v, want %+v", got, next)
	}
	_, _, body = rawRequest(t, f, http.MethodGet, "/v1/graph", nil)
	for _, want := range []string{`"members":[{"kind":"noop","name":"a"},{"kind":"noop","name":"b"}]`,
		`"waiting":"dependencies"`, `"from":{"kind":"noop","name":"a"}`, `"notify":true`, `"keys":[{"send":"out","recv":"in"}]`} {
		if !strings.Contains(body, want) {
			t.Errorf("JSON lacks %s: %s", want, body)
		}
	}

	bare := newFixture(t, fixtureOpts{})
	if _, err := bare.client.Graph(t.Context()); api.StatusCode(err) != http.StatusNotImplemented {
		t.Errorf("without Config.Graph: got %v, want 501", err)
	}
	if code, _, body := rawRequest(t, bare, http.MethodPost, "/v1/graph", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s, want 405", code, body)
	}
}
