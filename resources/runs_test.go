package resources

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
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

func writeRecord(t *testing.T, dir string, rec runRecord) {
	t.Helper()
	r := newExecRuns(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf(`{"resource":%q,"token":%q,"pgid":%d,"start":%d}`, rec.Resource, rec.Token, rec.PGID, rec.Start)
	if err := os.WriteFile(r.path(rec.Token), []byte(data), 0o600); err != nil {
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
		if _, err := runs.begin(owner, slog.New(logs)); err != nil {
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
	if _, err := newExecRuns(dir).begin("exec[d]", slog.New(logs)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
}
