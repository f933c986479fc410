package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/raftnode"
)

// noStore is a Store for servers whose tests call only /v1/status.
type noStore struct{ Store }

func statusServer(t *testing.T, host string) *Server {
	t.Helper()
	s, err := NewServer(Config{Store: noStore{}, Status: func() raftnode.Status { return raftnode.Status{} }, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveFront serves f on a unix socket until the test ends and returns a
// client of it.
func serveFront(t *testing.T, f *Front) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, ln) }()
	c, err := api.NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

// A request that finds no server (a side restarting) waits for one up to
// the Front's wait, then is answered 503 with a reason, on a connection
// that stays usable: the next server answers the next request.
func TestFrontAnswers503WhenNoServerTakesARequestInTime(t *testing.T) {
	f := NewFront(50*time.Millisecond, nil)
	c := serveFront(t, f)
	_, err := c.Status(t.Context())
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || !strings.Contains(apiErr.Message, "restarting") {
		t.Fatalf("a status call with no server: %v, want a 503 saying the cluster side is restarting", err)
	}
	f.Set(statusServer(t, "two"))
	st, err := c.Status(t.Context())
	if err != nil || st.Host != "two" {
		t.Fatalf("a status call once a server is set: %+v, %v; want host two's answer", st, err)
	}
}

// A server stopped takes no more requests, even while it is still the
// Front's current one (a side restarting stops its server before the next
// is set): they wait for the next server.
func TestAStoppedServerTakesNoMoreRequests(t *testing.T) {
	f := NewFront(100*time.Millisecond, nil)
	c := serveFront(t, f)
	one := statusServer(t, "one")
	f.Set(one)
	if st, err := c.Status(t.Context()); err != nil || st.Host != "one" {
		t.Fatalf("status: %+v, %v; want host one's answer", st, err)
	}
	one.Stop()
	st, err := c.Status(t.Context())
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Fatalf("a status call once one stopped: %+v, %v; want it left to the next server, and a 503 with none", st, err)
	}
	f.Set(statusServer(t, "two"))
	if st, err := c.Status(t.Context()); err != nil || st.Host != "two" {
		t.Errorf("a status call once two is set: %+v, %v; want host two's answer", st, err)
	}
}
