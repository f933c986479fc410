package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
	apiserver "github.com/graftcm/graft/api/server"
)

// startWatch runs `graft kv watch args...` in-process until the returned
// function cancels it and returns its exit code.
func startWatch(t *testing.T, out *syncBuffer, args ...string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: &errOut, hard: make(chan struct{})}
	go func() { done <- runEnv(ctx, e, append([]string{"graft", "kv", "watch"}, args...)) }()
	return func() int {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Logf("watch stderr: %s", errOut.String())
			}
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("kv watch still running 10s after it was interrupted")
			return -1
		}
	}
}

// kv watch prints one line per change under its prefix, in order, and
// exits 0 when interrupted.
func TestKVWatch(t *testing.T) {
	sock, w := testAPI(t)
	ctx := t.Context()
	// Watching from a revision (not 0, which means now) sees the changes
	// however late the watch is set up.
	from, err := w.Put(ctx, "app/before", []byte("not reported"))
	if err != nil {
		t.Fatal(err)
	}
	out := newSyncBuffer()
	stop := startWatch(t, out, "--api", sock, "--rev", fmt.Sprint(from), "app/")
	r1, _ := w.Put(ctx, "app/a", []byte("1"))
	w.Put(ctx, "other", []byte("x"))
	r2, _ := w.Put(ctx, "app/a", []byte("two\nlines"))
	r3, _ := w.Delete(ctx, "app/a")
	want := fmt.Sprintf("PUT app/a=1 rev=%d\nPUT app/a=\"two\\nlines\" rev=%d\nDEL app/a rev=%d\n", r1, r2, r3)
	out.waitFor(t, 10*time.Second, want)
	if code := stop(); code != 0 {
		t.Errorf("exit %d after an interrupt, want 0", code)
	}
	if got := out.String(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// With --json, kv watch prints the stream's objects, the start first.
func TestKVWatchJSON(t *testing.T) {
	sock, w := testAPI(t)
	out := newSyncBuffer()
	stop := startWatch(t, out, "--api", sock, "--json")
	defer stop()
	out.waitFor(t, 10*time.Second, `{"start":true,`)
	rev, err := w.Put(t.Context(), "k", []byte{0xff})
	if err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, 10*time.Second, fmt.Sprintf(`"rev":%d,"events"`, rev))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", lines)
	}
	var ev api.WatchEvent
	if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 1 || ev.Events[0].Type != api.EventPut || string(ev.Events[0].KV.Value) != "\xff" {
		t.Errorf("event %+v", ev)
	}
}

func TestPrintWatchEventResync(t *testing.T) {
	var b bytes.Buffer
	err := printWatchEvent(&b, api.WatchEvent{Rev: 9, Resync: true, State: []api.KV{
		{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("x\ny")},
	}})
	if want := "RESYNC rev=9\na=1\nb=\"x\\ny\"\n"; err != nil || b.String() != want {
		t.Errorf("got %q, %v; want %q", b.String(), err, want)
	}
}

// A watch from a revision the cluster has not reached fails, naming the
// current one; a watch on a node out of touch with its leader warns on
// stderr.
func TestKVWatchFutureRevisionAndStaleNode(t *testing.T) {
	node := &apitest.FakeNode{}
	sock, w, _ := testAPIWith(t, func(c *apiserver.Config) { c.Node = node })
	rev, err := w.Put(t.Context(), "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := graft(t, "kv", "watch", "--api", sock, "--rev", fmt.Sprint(rev+10))
	if want := fmt.Sprintf("required revision %d is a future revision: the current revision is %d", rev+10, rev); code != 1 || stdout != "" || !strings.Contains(stderr, want) {
		t.Errorf("watch from a future revision: exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
	}

	node.SetLeader(time.Now().Add(-20*time.Second), "")
	ctx, cancel := context.WithCancel(t.Context())
	out, errOut := newSyncBuffer(), newSyncBuffer()
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: errOut, hard: make(chan struct{})}
	done := make(chan int, 1)
	go func() { done <- runEnv(ctx, e, []string{"graft", "kv", "watch", "--api", sock, "--json"}) }()
	errOut.waitFor(t, 10*time.Second, "warning: the agent's node last heard from a cluster leader")
	if ago, ok := warnedAge(errOut.String()); !ok || ago < 20 {
		t.Errorf("watch warning %q, want a contact at least 20s ago", errOut.String())
	}
	out.waitFor(t, 10*time.Second, `"known_leader":false`)
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after an interrupt", code)
	}
	if strings.Contains(out.String(), "warning") {
		t.Errorf("the warning went to stdout: %q", out.String())
	}
}
