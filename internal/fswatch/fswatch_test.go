package fswatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(limitChildEnv); mode != "" {
		if err := limitChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// startHub runs a hub for the test's lifetime.
func startHub(t *testing.T) *Hub {
	t.Helper()
	h, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// subscription counts notifications on a channel.
type subscription struct{ ch chan struct{} }

func watch(t *testing.T, h *Hub, path string) *subscription {
	t.Helper()
	s := &subscription{ch: make(chan struct{}, 1024)}
	cancel, err := h.Watch(path, func() {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return s
}

// expect waits for a notification caused by do, failing after a generous
// deadline. Earlier notifications are discarded first.
func (s *subscription) expect(t *testing.T, what string, do func()) {
	t.Helper()
	s.drain()
	do()
	select {
	case <-s.ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no notification after %s", what)
	}
}

func (s *subscription) drain() {
	for {
		select {
		case <-s.ch:
		default:
			return
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFileLifecycleNotifies(t *testing.T) {
	h := startHub(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	s := watch(t, h, path)

	s.expect(t, "create", func() { must(t, os.WriteFile(path, []byte("a"), 0o644)) })
	s.expect(t, "write", func() { must(t, os.WriteFile(path, []byte("b"), 0o644)) })
	s.expect(t, "chmod", func() { must(t, os.Chmod(path, 0o600)) })
	s.expect(t, "rename away", func() { must(t, os.Rename(path, path+".old")) })
	s.expect(t, "rename into place", func() { must(t, os.Rename(path+".old", path)) })
	s.expect(t, "remove", func() { must(t, os.Remove(path)) })
}

// A path whose parents do not exist yet is watched from the nearest ancestor,
// and the watch follows the directories down as they appear and back up as
// they vanish.
func TestMissingParentsAreFollowed(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "f")
	s := watch(t, h, path)

	s.expect(t, "mkdir a", func() { must(t, os.Mkdir(filepath.Join(root, "a"), 0o755)) })
	s.expect(t, "mkdir a/b", func() { must(t, os.Mkdir(filepath.Join(root, "a", "b"), 0o755)) })
	s.expect(t, "create f", func() { must(t, os.WriteFile(path, nil, 0o644)) })
	s.expect(t, "remove the tree", func() { must(t, os.RemoveAll(filepath.Join(root, "a"))) })
	// After the tree went away the watch must still work from the root.
	s.expect(t, "mkdir -p and create again", func() {
		must(t, os.MkdirAll(filepath.Join(root, "a", "b"), 0o755))
		must(t, os.WriteFile(path, nil, 0o644))
	})
	s.expect(t, "write after re-creation", func() { must(t, os.WriteFile(path, []byte("x"), 0o644)) })
}

// Directories created in one go (mkdir -p) are not missed even though the
// hub only learns about them one level at a time.
func TestMkdirAllRaceNotMissed(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	for i := range 20 {
		base := filepath.Join(root, "r", string(rune('a'+i)))
		path := filepath.Join(base, "x", "y", "f")
		s := watch(t, h, path)
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		s.expect(t, "create after mkdir -p", func() { must(t, os.WriteFile(path, nil, 0o644)) })
	}
}

// Many subscriptions in one directory share one watch, and an event reaches
// only the subscription it concerns.
func TestEventsRouteByName(t *testing.T) {
	h := startHub(t)
	dir := t.TempDir()
	a := watch(t, h, filepath.Join(dir, "a"))
	b := watch(t, h, filepath.Join(dir, "b"))
	h.mu.Lock()
	if n := len(h.dirs); n != 1 {
		t.Errorf("got %d watched directories, want 1", n)
	}
	h.mu.Unlock()
	a.expect(t, "write a", func() { must(t, os.WriteFile(filepath.Join(dir, "a"), nil, 0o644)) })
	// b hears about its own file; nothing from a's arrives after a's is drained.
	b.expect(t, "write b", func() { must(t, os.WriteFile(filepath.Join(dir, "b"), nil, 0o644)) })
	select {
	case <-a.ch:
		t.Error("a was notified about b")
	default:
	}
}

// Unsubscribing releases the directory watch once nobody needs it.
func TestCancelReleasesWatch(t *testing.T) {
	h := startHub(t)
	dir := t.TempDir()
	var cancels []func()
	for _, n := range []string{"a", "b"} {
		c, err := h.Watch(filepath.Join(dir, n), func() {})
		must(t, err)
		cancels = append(cancels, c)
	}
	for _, c := range cancels {
		c()
		c() // idempotent
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.dirs) != 0 || len(h.subs) != 0 {
		t.Errorf("watches left after cancel: dirs=%d subs=%d", len(h.dirs), len(h.subs))
	}
}

func TestRejectsRelativePathAndClosedHub(t *testing.T) {
	h, err := New(nil)
	must(t, err)
	if _, err := h.Watch("relative/path", func() {}); err == nil {
		t.Error("relative path accepted")
	}
	must(t, h.Close())
	must(t, h.Close())
	if _, err := h.Watch("/tmp/x", func() {}); err == nil {
		t.Error("Watch on a closed hub succeeded")
	}
}

// Concurrent subscribe and cancel while events flow must be race-free.
func TestConcurrentSubscriptions(t *testing.T) {
	h := startHub(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := filepath.Join(dir, string(rune('a'+i)), "f")
			for range 20 {
				c, err := h.Watch(p, func() {})
				if err != nil {
					t.Error(err)
					return
				}
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				_ = os.WriteFile(p, nil, 0o644)
				_ = os.RemoveAll(filepath.Dir(p))
				c()
			}
		})
	}
	wg.Wait()
}
