package fswatch

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// dirSubscription collects the entry names WatchDir notifies.
type dirSubscription struct{ ch chan string }

func watchDir(t *testing.T, h *Hub, path string) (*dirSubscription, func()) {
	t.Helper()
	s := &dirSubscription{ch: make(chan string, 1024)}
	cancel, err := h.WatchDir(path, func(name string) {
		select {
		case s.ch <- name:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return s, cancel
}

// expect waits until do causes a notification naming want, failing after a
// generous deadline. Earlier notifications are discarded first.
func (s *dirSubscription) expect(t *testing.T, want string, do func()) {
	t.Helper()
	for len(s.ch) > 0 {
		<-s.ch
	}
	do()
	deadline := time.After(5 * time.Second)
	var got []string
	for {
		select {
		case name := <-s.ch:
			if name == want {
				return
			}
			got = append(got, name)
		case <-deadline:
			t.Fatalf("no notification naming %q (got %q)", want, got)
		}
	}
}

// WatchDir tells of every entry of a directory by name, whatever the name,
// and of the directory itself vanishing and coming back; it goes on
// telling of the entries of the new directory, and tells nothing once
// cancelled.
func TestWatchDirTellsEveryEntryAndFollowsTheDirectory(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	dir := filepath.Join(root, "lists")
	s, cancel := watchDir(t, h, dir)

	s.expect(t, "", func() { must(t, os.Mkdir(dir, 0o755)) })
	s.expect(t, "a", func() { must(t, os.WriteFile(filepath.Join(dir, "a"), []byte("1"), 0o644)) })
	s.expect(t, "b", func() { must(t, os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b"))) })
	s.expect(t, "b", func() { must(t, os.Chmod(filepath.Join(dir, "b"), 0o600)) })
	s.expect(t, "", func() { must(t, os.RemoveAll(dir)) })
	s.expect(t, "", func() { must(t, os.Mkdir(dir, 0o755)) })
	s.expect(t, "c", func() { must(t, os.WriteFile(filepath.Join(dir, "c"), nil, 0o644)) })
	// A directory renamed into place of the watched one is watched too.
	must(t, os.Mkdir(filepath.Join(root, "new"), 0o755))
	must(t, os.Remove(filepath.Join(dir, "c")))                                          // rename replaces only an empty directory
	s.expect(t, "", func() { must(t, syscall.Rename(filepath.Join(root, "new"), dir)) }) // os.Rename refuses a directory target
	s.expect(t, "d", func() { must(t, os.WriteFile(filepath.Join(dir, "d"), nil, 0o644)) })

	cancel()
	for len(s.ch) > 0 {
		<-s.ch
	}
	must(t, os.WriteFile(filepath.Join(dir, "e"), nil, 0o644))
	// A file watch in the same directory, made after the write, sees its
	// own next event: by then the hub has handled the write's.
	f := watch(t, h, filepath.Join(dir, "e"))
	f.expect(t, "a write after cancel", func() { must(t, os.WriteFile(filepath.Join(dir, "e"), []byte("x"), 0o644)) })
	if len(s.ch) > 0 {
		t.Errorf("a cancelled WatchDir was notified of %q", <-s.ch)
	}
}

// Ordinary watches of files in a directory that WatchDir also watches keep
// working when either subscription ends.
func TestWatchDirSharesTheDirectoryWithPathWatches(t *testing.T) {
	h := startHub(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f := watch(t, h, path)
	s, cancel := watchDir(t, h, dir)
	s.expect(t, "f", func() { must(t, os.WriteFile(path, nil, 0o644)) })
	cancel()
	f.expect(t, "a write after the WatchDir ended", func() { must(t, os.WriteFile(path, []byte("x"), 0o644)) })

	s2, _ := watchDir(t, h, dir)
	g := filepath.Join(dir, "g")
	gcancel, err := h.Watch(g, func() {})
	must(t, err)
	gcancel()
	s2.expect(t, "g", func() { must(t, os.WriteFile(g, nil, 0o644)) })
}
