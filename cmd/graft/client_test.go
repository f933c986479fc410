package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	apiserver "github.com/graftcm/graft/api/server"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/world"
)

// testAPI serves the local API of a one-node in-process cluster on a unix
// socket until the test ends, and returns the socket's path and the World
// behind it.
func testAPI(t *testing.T) (string, *world.World) {
	t.Helper()
	sock, w, _ := testAPIWith(t, nil)
	return sock, w
}

// testAPIWith is testAPI with mod adjusting the API's configuration; it
// also returns the function that stops the API (which the test's end
// calls too).
func testAPIWith(t *testing.T, mod func(*apiserver.Config)) (sock string, w *world.World, stop func()) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), apiSocket)
	ln, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	w, stop = serveTestAPI(t, ln, mod)
	return sock, w, stop
}

// serveTestAPI serves on ln, until the test ends, the local API of a
// one-node in-process cluster, mod adjusting its configuration. It returns
// the World behind it and the function that stops it.
func serveTestAPI(t *testing.T, ln net.Listener, mod func(*apiserver.Config)) (*world.World, func()) {
	t.Helper()
	c := clustertest.New(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	node := c.Members[0].Node()
	w, err := world.New(node, "node0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiserver.Config{Store: w, Status: node.Status, Host: "node0", Version: "v-test"}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := apiserver.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := goRun(func(ctx context.Context) error { return srv.Serve(ctx, ln) },
		func(err error) { t.Errorf("serve: %v", err) })
	t.Cleanup(stop)
	return w, stop
}

// graftIn runs graft in-process with stdin, and returns its exit code and
// output.
func graftIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, hard: make(chan struct{})}
	code = runEnv(t.Context(), e, append([]string{"graft"}, args...))
	return code, out.String(), errOut.String()
}

// syncBuffer is a buffer written by one goroutine and waited on by another.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	grew chan struct{} // signalled on every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{grew: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.grew <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds want, failing after timeout.
func (b *syncBuffer) waitFor(t *testing.T, timeout time.Duration, want string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !strings.Contains(b.String(), want) {
		select {
		case <-b.grew:
		case <-deadline.C:
			t.Fatalf("no %q within %v; output:\n%s", want, timeout, b.String())
		}
	}
}

// With no agent, a client command says which socket it tried and how to
// start one.
func TestClientWithoutAgentSaysHowToStartOne(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"kv", "get", "--data-dir", dir, "k"},
		{"kv", "put", "--data-dir", dir, "k", "v"},
		{"kv", "watch", "--data-dir", dir},
		{"status", "--api", filepath.Join(dir, "elsewhere.sock")},
	} {
		code, _, stderr := graft(t, args...)
		if code != 1 || !strings.Contains(stderr, "no graft agent answers at "+dir) || !strings.Contains(stderr, "graft run") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and a message naming the socket and `graft run`", args, code, stderr)
		}
	}
	if code, _, stderr := graft(t, "kv", "get", "--api", "https://127.0.0.1:1", "k"); code != exitUsage || !strings.Contains(stderr, "--api") {
		t.Errorf("an https API address: exit %d, %q", code, stderr)
	}
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      "plain",
		"with space": "with space",
		"tab\there":  `"tab\there"`,
		`"quoted"`:   `"\"quoted\""`,
		"a\u00a0b":   `"a\u00a0b"`,
		`in"side`:    `in"side`,
		"ünï":        "ünï",
		"":           "",
		"two\nlines": `"two\nlines"`,
		"\xff\x00":   `"\xff\x00"`,
		"bell\a":     `"bell\a"`,
	} {
		if got := formatValue([]byte(in)); got != want {
			t.Errorf("formatValue(%q) = %s, want %s", in, got, want)
		}
	}
}
