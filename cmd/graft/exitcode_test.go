package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A command-line mistake exits 64 (EX_USAGE), never 2: a dry run
// (`run --noop --converged-exit`) exits 2 when something would change, so
// a CI script reading 2 as "changes pending" took a typo in its own
// command line for pending changes.
func TestUsageErrorsDoNotExitAsChangesPending(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: f
    path: %s
    content: x
`, filepath.Join(dir, "f")))
	for _, args := range [][]string{
		// The dry run a CI script runs, with a typo in a flag's name.
		{"run", "--tmp-prefix", "--noop", "--converged-timout=0", "--converged-exit", "yaml", g},
		{"run", "--tmp-prefix", "--noop", "--converged-exit", "yaml", g}, // no --converged-timeout
		{"run", "--sema", "many", "yaml", g},
		{"run", "yaml"},
		{"bogus"},
		{"kv", "frob"},
		{"--bogus"},
		{"kv", "get", "--api", filepath.Join(dir, "none.sock")},
		{"kv", "put", "--api", "https://127.0.0.1:1", "k", "v"},
		{"check"},
		{"status", "extra"},
	} {
		code, _, stderr := graft(t, args...)
		if code != exitUsage || code == exitWouldChange || !strings.HasPrefix(stderr, "graft: ") {
			t.Errorf("%q: exit %d, stderr %q; want %d (EX_USAGE) and the mistake on stderr", args, code, stderr, exitUsage)
		}
	}
	// And the dry run itself still exits 2 for a change pending.
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--noop", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code != exitWouldChange {
		t.Errorf("the dry run: exit %d, want %d: %s", code, exitWouldChange, stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, "f")); err == nil {
		t.Error("the dry run created the file")
	}
}
