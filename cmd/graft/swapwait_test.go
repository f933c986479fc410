package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 9, item 1: with an exec running a long command, an edit of the
// graph froze the agent until the command ended: the new resource did not
// appear and a deleted managed file stayed missing. Now the swap goes ahead
// at once (it keeps the exec) and drift is repaired while the command runs.
func TestEditWhileLongExecRunsDoesNotFreezeTheAgent(t *testing.T) {
	dir := t.TempDir()
	fifo, started := filepath.Join(dir, "fifo"), filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// release lets the long command end, once. Its `touch` comes before
	// `cat` opens the fifo: until cat has, a non-blocking open for writing
	// fails (ENXIO) and would release nothing, so it tries again (a
	// loaded machine once left the command waiting for ever).
	var once sync.Once
	release := func() {
		once.Do(func() {
			deadline := time.Now().Add(20 * time.Second)
			for {
				f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
				if err == nil {
					f.Close()
					return
				}
				if !errors.Is(err, syscall.ENXIO) || time.Now().After(deadline) {
					t.Errorf("releasing the long command: %v", err)
					return
				}
				<-time.After(10 * time.Millisecond)
			}
		})
	}
	fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	base := fmt.Sprintf(`resources:
  exec:
  - name: long
    cmd: "touch %s; cat %s >/dev/null"
    shell: /bin/sh
  file:
  - name: a
    path: %s
    content: "a\n"
`, started, fifo, fa)
	g := writeGraph(t, dir, "g.yaml", base)
	ag := startAgent(t, "run", "--tmp-prefix", "--log-format", "json", "yaml", g)
	t.Cleanup(release) // before the agent's own cleanup, which stops it
	waitFile(t, started)
	waitContent(t, fa, "a\n")

	writeGraph(t, dir, "g.yaml", base+fmt.Sprintf("  - name: b\n    path: %s\n    content: \"b\\n\"\n", fb))
	waitContent(t, fb, "b\n")
	if err := os.Remove(fa); err != nil {
		t.Fatal(err)
	}
	waitContent(t, fa, "a\n")
	// The command was still running all along: it waits on the fifo.
	if hasApplied(t, ag.output(), "exec[long]") {
		t.Fatal("the long command ended early; the test proves nothing")
	}
	release()
	ag.waitFor(20*time.Second, "exec[long] applied", func(s string) bool { return hasApplied(t, s, "exec[long]") })
}
