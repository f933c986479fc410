package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The agent runs its graph file through the combiner: a file it exports
// is not written where the graph declares it, but collected, from the
// World, into the directory its collect names (its own exports count).
func TestRunCollectsItsOwnExportIntoTheCollectDirectory(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: "@@motd"
    path: %[1]s/declared/motd
    content: "shared\n"
  - name: local
    path: %[1]s/local
    content: "mine\n"
collect:
- kind: file
  pattern: %[1]s/in
`, dir))
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan string, 1)
	go func() {
		code, _, stderr := cliContext(ctx, "run", "--data-dir", filepath.Join(dir, "data"), "yaml", g)
		done <- fmt.Sprintf("exit %d; stderr:\n%s", code, stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := os.ReadFile(filepath.Join(dir, "in", "motd"))
		if err == nil && string(got) == "shared\n" {
			break
		}
		select {
		case out := <-done:
			t.Fatalf("the agent stopped: %s", out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no collected file within a minute: %s", <-done)
		}
	}
	cancel()
	out := <-done
	if _, err := os.Lstat(filepath.Join(dir, "declared", "motd")); err == nil {
		t.Errorf("the exported file was written where the graph declares it: %s", out)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "local")); err != nil || string(got) != "mine\n" {
		t.Errorf("local file: %q %v", got, err)
	}
}

// --export-grace takes a positive duration.
func TestRunRefusesANonPositiveExportGrace(t *testing.T) {
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--export-grace", "0s", "yaml", "x.yaml")
	if code == 0 || !strings.Contains(stderr, "--export-grace: 0s is not a positive duration") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}
