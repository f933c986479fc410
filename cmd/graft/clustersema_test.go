package main

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// An agent killed while a resource held a cluster semaphore slot, and
// restarted before the cluster could declare it dead (here: the only node
// of its cluster, which never is), gives the slot back when it starts:
// otherwise a holder no process knows would keep it for as long as the
// host stays in the cluster, from every host.
func TestAgentKilledHoldingASlotReleasesItWhenRestarted(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	marker, done := filepath.Join(dir, "marker"), filepath.Join(dir, "done")
	// hold holds @@lock until the kill; the marker holds the shell's pid,
	// which leads its process group.
	hold := writeGraph(t, dir, "hold.yaml", fmt.Sprintf(`resources:
  exec:
  - name: hold
    cmd: 'echo $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s && sleep 300'
    shell: /bin/sh
    meta:
      sema: ["@@lock"]
`, marker))
	next := writeGraph(t, dir, "next.yaml", fmt.Sprintf(`resources:
  exec:
  - name: next
    cmd: 'echo ran > %[1]s'
    shell: /bin/sh
    meta:
      sema: ["@@lock"]
`, done))
	first := startTestAgent(t, data, "h1", "yaml", hold)
	waitFile(t, marker)
	var pgid int
	if _, err := fmt.Sscan(readString(marker), &pgid); err != nil || pgid <= 1 {
		t.Fatalf("marker holds %q: %v", readString(marker), err)
	}
	// The killed agent cannot stop its command; the test does.
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	first.signal(syscall.SIGKILL)
	first.exitCode(10 * time.Second)

	second := startTestAgent(t, data, "h1", "yaml", next)
	waitFile(t, done)
	second.stop()
}
