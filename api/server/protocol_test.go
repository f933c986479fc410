package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/graftcm/graft/api"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// concurrentPuts makes n puts at once through client.
func concurrentPuts(t *testing.T, client *api.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := client.Put(t.Context(), fmt.Sprintf("k%d", i), []byte("v")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestHTTP2ClientRequestsShareOneConnection: with the HTTP2 option,
// api.Client speaks h2c, so once it has a connection, concurrent requests
// are streams on it rather than a connection each.
func TestHTTP2ClientRequestsShareOneConnection(t *testing.T) {
	var conns atomic.Int64
	f := newFixture(t, fixtureOpts{tcp: true, listen: func(ln net.Listener) net.Listener {
		return countingListener{Listener: ln, n: &conns}
	}})
	for name, addr := range map[string]string{"unix": f.sock, "tcp": "http://" + f.tcpAddr} {
		t.Run(name, func(t *testing.T) {
			client, err := api.NewClient(addr, api.HTTP2())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if _, err := client.Put(t.Context(), "warm", []byte("v")); err != nil {
				t.Fatal(err)
			}
			before := conns.Load()
			concurrentPuts(t, client, 32)
			if got := conns.Load() - before; got != 0 {
				t.Errorf("32 concurrent puts after a first one opened %d more connections, want none", got)
			}
		})
	}
}

// TestHTTP1AndH2CClientsAreServed: curl (HTTP/1.1, and HTTP/2 with prior
// knowledge) and Go's default HTTP/1.1 client are served on the unix
// socket and on TCP, each in the protocol it spoke.
func TestHTTP1AndH2CClientsAreServed(t *testing.T) {
	f := newFixture(t, fixtureOpts{tcp: true})
	resp, err := f.raw.Get("http://graft/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" {
		t.Errorf("Go's default client: %s in %s, want 200 in HTTP/1.1", resp.Status, resp.Proto)
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed: the curl half of this test needs it")
	}
	tcpAddr := f.tcpAddr
	for _, tc := range []struct {
		name  string
		args  []string
		proto string
	}{
		{"unix/http1.1", []string{"--unix-socket", f.sock, "http://localhost"}, "1.1"},
		{"unix/h2c", []string{"--http2-prior-knowledge", "--unix-socket", f.sock, "http://localhost"}, "2"},
		{"tcp/http1.1", []string{"http://" + tcpAddr}, "1.1"},
		{"tcp/h2c", []string{"--http2-prior-knowledge", "http://" + tcpAddr}, "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "curl-" + strings.ReplaceAll(tc.name, "/", "-")
			base := tc.args[len(tc.args)-1]
			opts := tc.args[:len(tc.args)-1]
			run := func(extra ...string) string {
				args := append([]string{"-sS", "--fail-with-body", "-w", "\n%{http_version}"}, opts...)
				out, err := exec.CommandContext(t.Context(), curl, append(args, extra...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("curl %v: %v: %s", extra, err, out)
				}
				return string(out)
			}
			put := run("-X", "PUT", "--data-binary", "hello", base+"/v1/kv/"+key)
			if !strings.HasSuffix(put, "\n"+tc.proto) {
				t.Errorf("put answered in HTTP/%s, want %s: %q", put[strings.LastIndex(put, "\n")+1:], tc.proto, put)
			}
			got := run(base + "/v1/kv/" + key)
			if !strings.Contains(got, `"value":"hello"`) || !strings.HasSuffix(got, "\n"+tc.proto) {
				t.Errorf("get: %q, want the value hello in HTTP/%s", got, tc.proto)
			}
		})
	}
}

// putCounter counts the puts that reach the store.
type putCounter struct {
	Store
	n *atomic.Int64
}

func (p putCounter) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	p.n.Add(1)
	return p.Store.Put(ctx, key, value)
}

// TestClientFallsBackToHTTP1ForAnAgentWithoutH2C: an agent that serves
// HTTP/1.1 only (one older than h2c support) answers the HTTP/2 preface
// in HTTP/1; a client with the HTTP2 option then sends its request over
// HTTP/1.1, once, and goes on in HTTP/1.1.
func TestClientFallsBackToHTTP1ForAnAgentWithoutH2C(t *testing.T) {
	var puts atomic.Int64
	f := newFixture(t, fixtureOpts{store: func(s Store) Store { return putCounter{Store: s, n: &puts} }})
	srv, err := NewServer(Config{Store: putCounter{Store: f.world, n: &puts}, Status: f.cluster.Members[0].Node().Status})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "old.sock")
	ln, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	var protos []string
	var mu sync.Mutex
	old := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PRI" { // the h2c preface, which Go's HTTP/1 server hands on
			mu.Lock()
			protos = append(protos, r.Proto)
			mu.Unlock()
		}
		srv.handler.ServeHTTP(w, r)
	})} // HTTP/1 only: no Protocols
	go old.Serve(ln)
	t.Cleanup(func() { old.Close() })
	client, err := api.NewClient(sock, api.HTTP2())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := range 3 {
		if _, err := client.Put(t.Context(), "old", []byte{byte(i)}); err != nil {
			t.Fatalf("put %d to an HTTP/1-only agent: %v", i, err)
		}
	}
	kv, ok, err := client.Get(t.Context(), "old")
	if err != nil || !ok || !bytes.Equal(kv.Value, []byte{2}) {
		t.Errorf("get: %v %v %v, want the last value put", kv, ok, err)
	}
	if got := puts.Load(); got != 3 {
		t.Errorf("%d puts reached the store, want 3", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(protos, " ") != "HTTP/1.1 HTTP/1.1 HTTP/1.1 HTTP/1.1" {
		t.Errorf("the agent saw requests in %v, want 4 in HTTP/1.1", protos)
	}
}
