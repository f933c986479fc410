package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/metrics"
)

// A real agent's metrics show the semaphores its resources hold and wait
// for: of two execs sharing semaphore "lock", one holds it (and a slot of
// --sema) while the other waits; both are back at 0 once they are done.
// They also show the World's watches and their lag, and raft's commit and
// apply latencies (bridged go-metrics summaries: raft's FSM applies in
// batches, so its apply time is raft.fsm.applyBatch).
func TestMetricsShowSemaphoreHoldersWaitersAndWatchLag(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	wait := fmt.Sprintf("'while [ ! -e %s ]; do sleep 0.05; done'", gate)
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`graph: sema
resources:
  exec:
  - name: a
    cmd: %[1]s
    shell: /bin/sh
    meta:
      sema: ["lock"]
  - name: b
    cmd: %[1]s
    shell: /bin/sh
    meta:
      sema: ["lock:1"]
`, wait))
	a := startAgent(t, "run", "--data-dir", filepath.Join(dir, "data"), "--hostname", "h1", "--log-format", "json",
		"--sema", "5", "--metrics", "127.0.0.1:0", "yaml", g)
	a.waitLog(20*time.Second, `"metrics listening"`)
	url := "http://" + logAttr(t, a.output(), "metrics listening", "address") + "/metrics"

	series := func(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
		v, _ := gaugeOf(fams, name, labels...)
		return v
	}
	var fams map[string]*dto.MetricFamily
	waitUntil(t, "one holder and one waiter of lock", func() (bool, error) {
		var err error
		if fams, err = tryScrape(url); err != nil {
			return false, err
		}
		h, w := series(fams, "graft_semaphore_holders", "sema", "lock"), series(fams, "graft_semaphore_waiters", "sema", "lock")
		commits, applies := series(fams, "graft_raft_commitTime"), series(fams, "graft_raft_fsm_applyBatch")
		if h != 1 || w != 1 || commits == 0 || applies == 0 {
			return false, fmt.Errorf("lock: %v holders, %v waiters; raft: %v commit times, %v apply times", h, w, commits, applies)
		}
		return true, nil
	})
	if v := series(fams, "graft_semaphore_holders", "sema", "--sema"); v != 1 {
		t.Errorf("graft_semaphore_holders{sema=\"--sema\"} = %v, want 1 (the running exec)", v)
	}
	if v := series(fams, "graft_world_watches"); v < 1 {
		t.Errorf("graft_world_watches = %v, want at least 1 (the converged states are watched)", v)
	}
	for _, name := range []string{"graft_world_watch_lag_revisions", "graft_world_watch_lag_seconds"} {
		if _, ok := gaugeOf(fams, name); !ok {
			t.Errorf("no series %s", name)
		}
	}

	openGate(t, gate)
	waitUntil(t, "lock free again", func() (bool, error) {
		var err error
		if fams, err = tryScrape(url); err != nil {
			return false, err
		}
		h, w := series(fams, "graft_semaphore_holders", "sema", "lock"), series(fams, "graft_semaphore_waiters", "sema", "lock")
		_, present := gaugeOf(fams, "graft_semaphore_holders", "sema", "lock")
		if !present || h != 0 || w != 0 {
			return false, fmt.Errorf("lock: %v holders, %v waiters (series present: %v)", h, w, present)
		}
		return true, nil
	})
	a.stop()
}

// Semaphores are counted by id, whatever count the tag gives; with --sema
// every running resource holds the host-wide limit, and a resource waiting
// for semaphores with none of its own waits for that limit.
func TestSemaphoreUseCountsByIDAndTheHostWideLimit(t *testing.T) {
	snap := engine.Snapshot{Resources: []engine.ResourceStatus{
		{State: engine.StateRunning, SemaHeld: []string{"lock:2", "@@deploy"}},
		{State: engine.StateWaiting, Waiting: engine.WaitSemaphores, SemaWaiting: []string{"lock"}},
		{State: engine.StateWaiting, Waiting: engine.WaitSemaphores},
		{State: engine.StateOK},
	}}
	got := semaphoreUse(snap, true)
	want := map[string]metrics.SemaphoreUse{"lock": {Holders: 1, Waiters: 1}, "@@deploy": {Holders: 1},
		globalSemaID: {Holders: 1, Waiters: 1}}
	if !maps.Equal(got, want) {
		t.Errorf("with --sema: %v, want %v", got, want)
	}
	delete(want, globalSemaID)
	if got := semaphoreUse(snap, false); !maps.Equal(got, want) {
		t.Errorf("without --sema: %v, want %v", got, want)
	}
}
