package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startGroup starts sh -c script in a process group of its own, with
// extra environment, and returns it; it is killed when the test ends.
func startGroup(t *testing.T, script string, env ...string) *exec.Cmd {
	t.Helper()
	c := exec.Command("/bin/sh", "-c", script)
	c.Env = append(os.Environ(), env...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
	})
	return c
}

// writeRecord writes rec under dir as an agent would have; an empty
// BootID is this boot's.
func writeRecord(t *testing.T, dir string, rec runRecord) {
	t.Helper()
	if rec.BootID == "" {
		id, err := readBootID()
		if err != nil {
			t.Fatal(err)
		}
		rec.BootID = id
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newExecRuns(dir).path(rec.Token), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A record names a group by its ID, which the kernel hands out again once
// the group is gone: a restarted agent must not kill a stranger that now
// has it, but must kill its own processes that outlived their leader.
func TestLeftoverRunsAreTheRunsOwnProcessesOnly(t *testing.T) {
	dir := t.TempDir()
	// A stranger leads a group whose ID a stale record names, with
	// another start time and without the token.
	stranger := startGroup(t, "exec sleep 1000")
	st, err := readProcStat(stranger.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, dir, runRecord{Resource: "exec[a]", Token: "0123", PGID: stranger.Process.Pid, Start: st.start + 1})

	// A run whose leader is dead left a child carrying its token.
	fifo, pids := execPIDFromFIFO(t, t.TempDir())
	own := startGroup(t, fmt.Sprintf(`sleep 1000 & echo $! > '%s'; exec sleep 1000`, fifo), runEnv+"=4567")
	child := <-pids
	ownStart, err := readProcStat(own.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, dir, runRecord{Resource: "exec[b]", Token: "4567", PGID: own.Process.Pid, Start: ownStart.start})
	if err := syscall.Kill(own.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = own.Wait() // the leader is reaped: only its child is left in the group

	// A guard that still leads its group: the whole group is the run's,
	// token or not (a process may have rewritten its environment).
	fifo2, pids2 := execPIDFromFIFO(t, t.TempDir())
	guard := startGroup(t, fmt.Sprintf(`sleep 1000 & echo $! > '%s'; exec sleep 1000`, fifo2))
	guardChild := <-pids2
	guardStart, err := readProcStat(guard.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, dir, runRecord{Resource: "exec[c]", Token: "cdef", PGID: guard.Process.Pid, Start: guardStart.start})

	logs := &logRecorder{}
	runs := newExecRuns(dir)
	for _, owner := range []string{"exec[a]", "exec[b]", "exec[c]"} {
		if _, err := runs.begin(t.Context(), owner, slog.New(logs)); err != nil {
			t.Fatalf("begin(%s): %v", owner, err)
		}
	}
	for _, pid := range []int{child, guard.Process.Pid, guardChild} {
		execWaitGone(t, pid)
	}
	if !running(stranger.Process.Pid) {
		t.Error("the stranger that reused a recorded group ID was killed")
	}
	killed := map[string]string{}
	for _, r := range logs.take() {
		if r.msg == "killed processes an earlier run of the agent left running" {
			killed[r.attrs["resource"]] = r.attrs["pids"]
		}
	}
	want := map[string]string{
		"exec[b]": fmt.Sprint([]int{child}),
		"exec[c]": fmt.Sprint(slices.Sorted(slices.Values([]int{guard.Process.Pid, guardChild}))),
	}
	if !maps.Equal(killed, want) {
		t.Errorf("logged kills %v, want %v", killed, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
	// An unreadable record is removed: it was written by an agent killed
	// before its guard got the go-ahead.
	if err := os.WriteFile(filepath.Join(dir, "89ab.json"), []byte(`{"res`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newExecRuns(dir).begin(t.Context(), "exec[d]", slog.New(logs)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
}

// startRecordedGroup starts a process that leads a group of its own and
// carries token, as a guard would, and records it for resource owner under
// dir with the given boot ID (empty: this boot's).
func startRecordedGroup(t *testing.T, dir, owner, token, bootID string) *exec.Cmd {
	t.Helper()
	c := startGroup(t, "exec sleep 1000", runEnv+"="+token)
	st, err := readProcStat(c.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, dir, runRecord{Resource: owner, Token: token, BootID: bootID, PGID: c.Process.Pid, Start: st.start})
	return c
}

// After a reboot, pids and start times start over: a record written before
// it named a group that an unrelated process may lead now, with the same
// start time, and the restarted agent killed it (as root, with SIGKILL).
func TestRunRecordOfAnotherBootKillsNothing(t *testing.T) {
	dir := t.TempDir()
	stranger := startRecordedGroup(t, dir, "exec[a]", "0123", "a-boot-before-this-one")
	logs := &logRecorder{}
	if _, err := newExecRuns(dir).begin(t.Context(), "exec[a]", slog.New(logs)); err != nil {
		t.Fatal(err)
	}
	if !running(stranger.Process.Pid) {
		t.Fatal("a process matching a record of another boot was killed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
	only(t, logs.take(), "removing the record of a run of another boot")
}

// stuckRuns returns an execRuns under dir whose SIGKILLs, like those sent
// to a process stuck in the kernel (state D), succeed but kill nothing.
// The channel receives a value at the first of them.
func stuckRuns(dir string) (*execRuns, <-chan struct{}) {
	runs := newExecRuns(dir)
	runs.killTimeout = time.Hour
	tried := make(chan struct{})
	var once sync.Once
	runs.kill = func(int, syscall.Signal) error {
		once.Do(func() { close(tried) })
		return nil
	}
	return runs, tried
}

// begin waited for a stuck leftover (up to 5 s a record) holding the lock
// of all runs: no command of any resource could start meanwhile, and
// nothing could interrupt it.
func TestStuckLeftoverDelaysOnlyItsOwnResourceAndYieldsToShutdown(t *testing.T) {
	dir := t.TempDir()
	stuck := startRecordedGroup(t, dir, "exec[a]", "0123", "")
	runs, tried := stuckRuns(dir)
	log := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	aDone := make(chan error, 1)
	go func() {
		_, err := runs.begin(ctx, "exec[a]", log)
		aDone <- err
	}()
	select {
	case <-tried:
	case <-time.After(30 * time.Second):
		t.Fatal("the leftover was never killed")
	}

	// Another resource starts while exec[a] waits for its leftover.
	bDone := make(chan error, 1)
	go func() {
		_, err := runs.begin(t.Context(), "exec[b]", log)
		bDone <- err
	}()
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("begin(exec[b]) = %v", err)
		}
	case err := <-aDone:
		t.Fatalf("begin(exec[a]) returned (%v) before begin(exec[b])", err)
	case <-time.After(30 * time.Second):
		t.Fatal("begin(exec[b]) waited for exec[a]'s leftover")
	}

	// A second start of exec[a] waits for the first, and gives up with
	// its own context.
	ctx2, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := runs.begin(ctx2, "exec[a]", log); !errors.Is(err, context.Canceled) {
		t.Errorf("begin(exec[a]) with a done context = %v, want context.Canceled", err)
	}

	cancel() // the agent shuts down
	select {
	case err := <-aDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("begin(exec[a]) = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("begin(exec[a]) ignored its context")
	}
	if !running(stuck.Process.Pid) {
		t.Fatal("the stuck leftover died: the test proves nothing")
	}
	// The record stays: the leftover is still there for the next start.
	if _, err := os.Stat(runs.path("0123")); err != nil {
		t.Errorf("the stuck leftover's record: %v", err)
	}
}

// The first command the agent starts kills the leftovers of every
// resource, including those of a resource no longer in the graph, which
// will never start a command again.
func TestFirstStartKillsLeftoversOfEveryResource(t *testing.T) {
	dir := t.TempDir()
	gone := startRecordedGroup(t, dir, "exec[removed]", "0123", "")
	if _, err := newExecRuns(dir).begin(t.Context(), "exec[a]", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	execWaitGone(t, gone.Process.Pid)
}
