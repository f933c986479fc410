package resources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/internal/fswatch"
)

// In a running engine a purge keeps what the graph's other file resources
// manage (a managed directory whole), learnt from the registry they were made by, and removes an
// unmanaged file another process adds later, seen by its watch.
func TestFilePurgeInARunningGraphKeepsTheGraphsFiles(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	write(t, filepath.Join(d, "junk"), "j", 0o644)
	write(t, filepath.Join(d, "keep"), "old", 0o644)
	write(t, filepath.Join(d, "kept-dir", "inner"), "i", 0o644)
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-hubDone })

	src := fmt.Sprintf(`---
graph: g
resources:
  file:
  - name: dir
    path: %q
    recurse: true
    purge: true
  - name: keep
    path: %q
    content: "kept"
  - name: kept-dir
    path: %q
    state: exists
`, d+"/", filepath.Join(d, "keep"), filepath.Join(d, "kept-dir")+"/")
	res, err := yamlgraph.Parse("g.yaml", []byte(src), NewRegistry(Deps{Files: hub}))
	if err != nil {
		t.Fatal(err)
	}
	runGraph(t, res.Graph)
	waitContent(t, filepath.Join(d, "keep"), "kept")
	waitGone(t, filepath.Join(d, "junk"))
	if err := os.WriteFile(filepath.Join(d, "later"), []byte("l"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitGone(t, filepath.Join(d, "later"))
	if got := readFile(t, filepath.Join(d, "kept-dir", "inner")); got != "i" {
		t.Errorf("inner holds %q", got)
	}
	if got := readFile(t, filepath.Join(d, "keep")); got != "kept" {
		t.Errorf("keep holds %q", got)
	}
}

// waitGone waits for p to be removed.
func waitGone(t *testing.T, p string) {
	t.Helper()
	eventually(t, 10*time.Second, p+" removed", func() bool {
		_, err := os.Lstat(p)
		return errors.Is(err, os.ErrNotExist)
	})
}
