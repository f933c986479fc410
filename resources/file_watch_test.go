package resources

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/graftcm/graft/internal/fswatch"
)

// watching starts a hub and f's Watch, and returns a function that waits
// for the next event after clearing those already seen.
func watching(t *testing.T, f *File) (next func(what string, change func())) {
	t.Helper()
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(ctx) }()
	f.hub = hub
	rt := newTestRuntime("file", f.path())
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := f.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	watchDone := make(chan error, 1)
	go func() { watchDone <- f.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-watchDone; err != nil {
			t.Errorf("Watch: %v", err)
		}
		<-hubDone
	})
	select {
	case <-rt.runningCh:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not report running")
	}
	return func(what string, change func()) {
		t.Helper()
		for len(rt.eventCh) > 0 {
			<-rt.eventCh
		}
		change()
		select {
		case <-rt.eventCh:
		case <-time.After(10 * time.Second):
			t.Fatalf("no event after %s", what)
		}
	}
}

// sh runs a shell command: a change made by another process.
func sh(t *testing.T, script string) func() {
	return func() {
		t.Helper()
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", script, err, out)
		}
	}
}

func TestFileWatchSeesSourceFileChangesByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, src, "1", 0o644)
	f := &File{Path: filepath.Join(dir, "dst"), Source: src}
	next := watching(t, f)
	next("source edited", sh(t, "echo 2 > "+src))
	converge(t, f, true, false)
	if got := readFile(t, f.Path); got != "2\n" {
		t.Errorf("copy holds %q", got)
	}
}

func TestFileWatchSeesFragmentsChangeByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	one, fragDir := filepath.Join(dir, "one"), filepath.Join(dir, "frags")+"/"
	write(t, one, "1", 0o644)
	if err := os.Mkdir(fragDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: filepath.Join(dir, "dst"), Fragments: []string{one, fragDir}}
	next := watching(t, f)
	next("fragment file edited", sh(t, "echo x >> "+one))
	next("file added to fragment dir", sh(t, "echo y > "+fragDir+"a"))
	next("file in fragment dir edited", sh(t, "echo z >> "+fragDir+"a"))
}

func TestFileWatchSeesDriftDeepInCopiedAndPurgedTrees(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/"
	write(t, filepath.Join(src, "sub", "f"), "f", 0o644)
	f := &File{Path: dst, Source: src, Recurse: true, Purge: true, managed: newManagedPaths()}
	next := watching(t, f)
	next("tree copied", func() { converge(t, f, true, false) })
	next("source nested edit", sh(t, "echo 2 > "+src+"sub/f"))
	next("copy nested edit", sh(t, "echo 3 > "+dst+"sub/f"))
	next("unmanaged dir in copy", sh(t, "mkdir "+dst+"sub/new"))
	next("file in the new dir", sh(t, "echo j > "+dst+"sub/new/junk"))
	converge(t, f, true, false)
	mustNotExist(t, filepath.Join(dst, "sub", "new"))
	if got := readFile(t, filepath.Join(dst, "sub", "f")); got != "2\n" {
		t.Errorf("copy holds %q", got)
	}
	next("source dir removed", sh(t, "rm -r "+src))
	next("source dir back", sh(t, "mkdir -p "+src+"x && echo a > "+src+"x/a"))
	next("file in the returned source", sh(t, "echo b > "+src+"x/a"))
}
