package api

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// An agent that does not know ?cas= answers a conditional put as a plain
// one (200 without "applied"): the client reports that the write was made
// without a compare, rather than a failed compare or a success.
func TestPutCASSaysWhenTheAgentIgnoredCAS(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "graft.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"rev":7}` + "\n"))
	})}
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(ln) }()
	t.Cleanup(func() { hs.Shutdown(context.Background()); <-done })
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, call := range map[string]func() (CASAnswer, error){
		"put":    func() (CASAnswer, error) { return c.PutCAS(t.Context(), "k", []byte("v"), 3) },
		"delete": func() (CASAnswer, error) { return c.DeleteCAS(t.Context(), "k", 3) },
	} {
		a, err := call()
		if err == nil || !strings.Contains(err.Error(), "does not know cas") || a.Applied {
			t.Errorf("%s: %+v %v, want an error saying the agent does not know cas", name, a, err)
		}
	}
}
