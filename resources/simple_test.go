package resources

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTimerTickCountsAsChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := &Timer{Interval: 10}
		if err := tm.Validate(); err != nil {
			t.Fatal(err)
		}
		rt := newTestRuntime("timer", "t")
		if err := tm.Init(&rt.Runtime); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() { _ = tm.Watch(ctx) }()
		synctest.Wait()
		converge(t, tm, true, true) // the startup event is not a tick

		<-time.After(10 * time.Second)
		synctest.Wait()
		if n := rt.events.Load(); n != 1 {
			t.Fatalf("got %d events after one interval, want 1", n)
		}
		converge(t, tm, true, false)
		converge(t, tm, true, true)

		// A refresh restarts the interval: no tick 10s after the first one.
		<-time.After(5 * time.Second)
		rt.refresh.Store(true)
		converge(t, tm, true, false)
		rt.refresh.Store(false)
		synctest.Wait()
		<-time.After(6 * time.Second) // 21s: the old schedule would have ticked at 20s
		synctest.Wait()
		if n := rt.events.Load(); n != 1 {
			t.Errorf("got %d events, want the interval restarted by the refresh", n)
		}
		<-time.After(5 * time.Second) // 26s: 10s after the refresh at 15s... plus slack
		synctest.Wait()
		if n := rt.events.Load(); n != 2 {
			t.Errorf("got %d events, want a tick 10s after the refresh", n)
		}
	})
	if err := (&Timer{}).Validate(); err == nil {
		t.Error("zero interval accepted")
	}
}

func TestPrintAndRefreshOnly(t *testing.T) {
	var buf syncBuffer
	rt := newTestRuntime("print", "p")
	rt.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	p := &Print{Msg: "hello there"}
	if err := p.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, p, true, true)
	if !strings.Contains(buf.String(), "hello there") {
		t.Errorf("message not logged: %q", buf.String())
	}

	var buf2 syncBuffer
	rt.Logger = slog.New(slog.NewTextHandler(&buf2, nil))
	q := &Print{Msg: "only on refresh", RefreshOnly: true}
	if err := q.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, q, true, true)
	if strings.Contains(buf2.String(), "only on refresh") {
		t.Error("refresh_only printed without a refresh")
	}
	rt.refresh.Store(true)
	converge(t, q, true, true)
	if !strings.Contains(buf2.String(), "only on refresh") {
		t.Error("refresh_only did not print on refresh")
	}
}

func TestNoopIsAlwaysInState(t *testing.T) {
	rt := newTestRuntime("noop", "n")
	n := &Noop{}
	if err := n.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	if err := n.Watch(t.Context()); err != nil || rt.running.Load() != 1 {
		t.Fatalf("Watch: %v, running=%d", err, rt.running.Load())
	}
	converge(t, n, true, true)
	rt.refresh.Store(true)
	converge(t, n, true, true)
}

func TestRegistryHasEveryKind(t *testing.T) {
	reg := NewRegistry(Deps{})
	for _, k := range []string{"exec", "file", "noop", "print", "timer"} {
		kind, ok := reg.Lookup(k)
		if !ok {
			t.Errorf("kind %q not registered", k)
			continue
		}
		if kind.New("x") == nil {
			t.Errorf("kind %q: New returned nil", k)
		}
	}
}
