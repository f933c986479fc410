package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/world"
)

// joinRecorder is a Cluster that answers every join without gossiping:
// the fuzz target exercises the API's parsing, not memberlist.
type joinRecorder struct {
	mu    sync.Mutex
	joins [][]string
}

func (j *joinRecorder) Join(addrs []string) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.joins = append(j.joins, addrs)
	return len(addrs), nil
}
func (j *joinRecorder) Members() []cluster.MemberInfo { return nil }
func (j *joinRecorder) ClusterID() string             { return "fuzz" }
func (j *joinRecorder) GossipAddr() string            { return "127.0.0.1:7946" }

// stopAfterStart is a response recorder that ends the request at its
// first flush: a watch or a leave has started streaming, or a semaphore
// slot was granted (and is given back as the request ends), which is all
// that the request's parsing decides.
type stopAfterStart struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (s stopAfterStart) Flush() {
	s.ResponseRecorder.Flush()
	s.cancel()
}

// fuzzServer is the API of a one-node cluster's World, its deploys, a
// joinRecorder and a leave that succeeds.
func fuzzServer(f *testing.F) http.Handler {
	c := clustertest.New(f, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		f.Fatal(err)
	}
	m := c.Members[0]
	w, err := world.New(m.Node(), m.ID, nil)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := NewServer(Config{Store: w, Deploys: w, Semaphores: w, Status: m.Node().Status, Node: m.Node(), Host: m.ID, Version: "v-fuzz",
		Cluster: &joinRecorder{}, Leave: func(context.Context) error { return nil }, Timeout: 5 * time.Second,
		Resources: func() api.Resources {
			return api.Resources{Graph: "fuzz", Resources: []api.Resource{{Kind: "file", Name: "/tmp/x", State: "ok"}}}
		}})
	if err != nil {
		f.Fatal(err)
	}
	return srv.handler
}

// serveRaw parses a request as net/http's server does and serves it; ok is
// false if net/http would refuse it before the API saw it.
func serveRaw(h http.Handler, method, target string, body []byte) (rec *httptest.ResponseRecorder, ok bool) {
	raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", method, target, len(body))
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + string(body))))
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec = httptest.NewRecorder()
	h.ServeHTTP(stopAfterStart{ResponseRecorder: rec, cancel: cancel}, r.WithContext(ctx))
	return rec, true
}

// FuzzHandler drives the local API's handler with whatever requests
// net/http would hand it: any method, path, query and body. Whatever the
// request: no panic; never 500 (a bad request is the client's fault, and
// says so); every failure answers a JSON error that says what was wrong;
// the handler allocates no more than a constant times the request and
// some room; a value put reads back as it was sent.
func FuzzHandler(f *testing.F) {
	h := fuzzServer(f)
	for _, seed := range []struct {
		method, target string
		body           []byte
	}{
		{"PUT", "/v1/kv/a/b", []byte("value")},
		{"PUT", "/v1/kv/bin", []byte{0xff, 0, 0xfe}},
		{"GET", "/v1/kv/a/b?linearizable=true", nil},
		{"GET", "/v1/kv?prefix=a/&linearizable=0", nil},
		{"DELETE", "/v1/kv/a/b", nil},
		{"PUT", "/v1/kv/c?cas=0", []byte("new")},
		{"PUT", "/v1/kv/c?cas=18446744073709551615", []byte("stale")},
		{"DELETE", "/v1/kv/c?cas=3", nil},
		{"PUT", "/v1/kv/c?cas=-1&cas=x", []byte("bad")},
		{"GET", "/v1/watch?prefix=a/&rev=1", nil},
		{"GET", "/v1/watch?rev=18446744073709551615", nil},
		{"GET", "/v1/status", nil},
		{"GET", "/v1/resources", nil},
		{"POST", "/v1/resources", []byte("{}")},
		{"POST", "/v1/join", []byte(`{"addrs":["10.0.0.2:7946"]}`)},
		{"POST", "/v1/join", []byte(`{"addrs":["h:1"],"token":"graft1_AAAA"}`)},
		{"GET", "/v1/members", nil},
		{"POST", "/v1/leave", nil},
		{"POST", "/v1/deploys", []byte(`{"origin":"fuzz","graph":"Z3JhcGg6IGcK"}`)},
		{"GET", "/v1/deploys", nil},
		{"GET", "/v1/deploys/1", nil},
		{"POST", "/v1/deploys/1/rollback", nil},
		{"POST", "/v1/sema/db?count=2", nil},
		{"POST", "/v1/sema/db", []byte("body")},
		{"POST", "/v1/sema/a/b?count=0", nil},
		{"DELETE", "/v1/sema/db?token=1", nil},
		{"PATCH", "/v1/kv/%ff", []byte("x")},
		{"GET", "/v1/kv/_graft/x", nil},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		var rec *httptest.ResponseRecorder
		var ok bool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rec, ok = serveRaw(h, method, target, body)
		runtime.ReadMemStats(&after)
		if !ok {
			return
		}
		// The cluster allocates in the background too: the room is generous.
		size := uint64(len(method) + len(target) + len(body))
		if n, bound := after.TotalAlloc-before.TotalAlloc, 256*size+32<<20; n > bound {
			t.Fatalf("%s %s with %d bytes allocated %d bytes, over %d", method, target, len(body), n, bound)
		}
		code := rec.Code
		if code == http.StatusInternalServerError {
			t.Fatalf("%s %q with body %q: 500: %s", method, target, body, rec.Body)
		}
		if code >= 400 {
			var eb api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("%s %q answered %d without a JSON error: %q", method, target, code, rec.Body)
			}
			return
		}
		if method == http.MethodPut && code == http.StatusOK {
			checkReadBack(t, h, target, body)
			// Deleted again, so that the state, and raft's snapshots of
			// it, stay small however long the fuzzer runs.
			path, _, _ := strings.Cut(target, "?")
			if rec, ok := serveRaw(h, http.MethodDelete, path, nil); !ok || rec.Code != http.StatusOK {
				t.Fatalf("deleting what a PUT to %q wrote: %d %s", target, rec.Code, rec.Body)
			}
		}
	})
}

// checkReadBack reads the key a PUT to target wrote and checks its value.
func checkReadBack(t *testing.T, h http.Handler, target string, value []byte) {
	path, _, _ := strings.Cut(target, "?")
	rec, ok := serveRaw(h, http.MethodGet, path+"?linearizable=true", nil)
	if !ok || rec.Code != http.StatusOK {
		t.Fatalf("reading back a PUT to %q: %v %d %s", target, ok, rec.Code, rec.Body)
	}
	var got api.GetAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("reading back a PUT to %q: %v", target, err)
	}
	if !bytes.Equal(got.KV.Value, value) {
		t.Fatalf("PUT %q wrote %q, reads back %q", target, value, got.KV.Value)
	}
}
