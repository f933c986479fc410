package resources

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestShadowToolRunsToItsEndWhenCancelled cancels the run of a tool while
// it works: a shadow tool killed halfway can leave an account in passwd
// without its shadow or group entries, so a started tool is never killed.
// The tool here is a script in a directory searched as the sbin fallback.
func TestShadowToolRunsToItsEndWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	started, goOn, done := filepath.Join(dir, "started"), filepath.Join(dir, "go"), filepath.Join(dir, "done")
	script := "#!/bin/sh\n: > " + started + "\nwhile [ ! -e " + goOn + " ]; do sleep 0.01; done\n: > " + done + "\n"
	if err := os.WriteFile(filepath.Join(dir, "graft-test-usermod"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tools := &shadowTools{fallback: []string{dir}}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- tools.run(ctx, "graft-test-usermod") }()
	waitExists(t, started)
	cancel()
	// The tool must still be running: let it finish.
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Errorf("run: %v", err)
	}
	if _, err := os.Stat(done); err != nil {
		t.Errorf("the tool did not run to its end: %v", err)
	}
	// A run asked for once cancelled does not start.
	if err := tools.run(ctx, "graft-test-usermod"); err == nil {
		t.Error("run with a cancelled context started the tool")
	}
}

func waitExists(t *testing.T, p string) {
	t.Helper()
	eventually(t, 10*time.Second, p+" created", func() bool {
		_, err := os.Stat(p)
		return err == nil
	})
}
