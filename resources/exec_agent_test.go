package resources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
)

// helperAgentEnv makes the test binary an agent in miniature instead of
// running tests (see TestMain). Its value is a JSON helperAgentSpec.
const helperAgentEnv = "GRAFT_TEST_HELPER_AGENT"

// helperAgentSpec is what a helper agent runs: one exec resource with the
// shell command Cmd, its runs recorded under StateDir.
type helperAgentSpec struct {
	StateDir string
	Cmd      string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperAgentEnv); spec != "" {
		os.Exit(helperAgent(spec))
	}
	os.Exit(m.Run())
}

// helperAgent wires an exec resource as graft run does (a registry with an
// exec state dir), applies it once and exits: 0 if the command succeeded.
func helperAgent(specJSON string) int {
	var spec helperAgentSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "helper agent:", err)
		return 2
	}
	kind, _ := NewRegistry(Deps{ExecStateDir: spec.StateDir}).Lookup("exec")
	e := kind.New("helper").(*Exec)
	e.Shell, e.Cmd = "/bin/sh", spec.Cmd
	rt := &engine.Runtime{
		ID:       engine.ID{Kind: "exec", Name: "helper"},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Running:  func() {},
		Event:    func() {},
		Refresh:  func() bool { return false },
		Send:     func(map[string]any) error { return nil },
		Recv:     func() map[string]bool { return nil },
		Hostname: "helper",
	}
	if err := e.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "helper agent:", err)
		return 2
	}
	if err := e.Init(rt); err != nil {
		fmt.Fprintln(os.Stderr, "helper agent:", err)
		return 2
	}
	if _, err := e.CheckApply(context.Background(), true); err != nil {
		fmt.Fprintln(os.Stderr, "helper agent:", err)
		return 1
	}
	return 0
}

// helperProc is a running helper agent.
type helperProc struct {
	cmd    *exec.Cmd
	done   chan error // receives what Wait returned, once
	stderr *syncBuffer
}

// startHelperAgent starts a helper agent process running cmd with its runs
// recorded under stateDir. It is killed when the test ends, and its stderr
// logged if the test failed.
func startHelperAgent(t *testing.T, stateDir, cmd string) *helperProc {
	t.Helper()
	spec, err := json.Marshal(helperAgentSpec{StateDir: stateDir, Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	h := &helperProc{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan error, 1)}
	h.cmd.Env = append(os.Environ(), helperAgentEnv+"="+string(spec))
	h.stderr = &syncBuffer{}
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		h.done <- h.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-waited
		if t.Failed() {
			t.Logf("helper agent %d stderr:\n%s", h.cmd.Process.Pid, h.stderr)
		}
	})
	return h
}

// kill SIGKILLs the helper agent and waits for it to be gone.
func (h *helperProc) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.done
}

// wait waits for the helper agent to exit and returns how it ended.
func (h *helperProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the helper agent did not finish")
	}
	return nil
}

// fifoPIDs makes a FIFO in dir and returns its path and a channel that
// yields the pids a command writes into it, separated by spaces.
func fifoPIDs(t *testing.T, dir string) (string, <-chan []int) {
	t.Helper()
	fifo := filepath.Join(dir, "pids")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pids := make(chan []int, 1)
	go func() {
		defer close(pids)
		b, err := os.ReadFile(fifo) // blocks until a writer opens and closes it
		if err != nil {
			return
		}
		var got []int
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				got = append(got, pid)
			}
		}
		pids <- got
	}()
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-pids
	})
	return fifo, pids
}

// receivePIDs waits for n pids from the channel, and makes sure that the
// processes they name are killed when the test ends, whatever happens.
func receivePIDs(t *testing.T, pids <-chan []int, n int) []int {
	t.Helper()
	select {
	case got := <-pids:
		if len(got) != n {
			t.Fatalf("the command wrote pids %v, want %d of them", got, n)
		}
		for _, pid := range got {
			start := testProcField(t, pid, 22)
			t.Cleanup(func() {
				// Kill it unless it is gone, or its pid was reused.
				if b, err := os.ReadFile(procStatPath(pid)); err == nil && statField(b, 22) == start {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
		}
		return got
	case <-time.After(30 * time.Second):
		t.Fatal("the command wrote no pids in time")
	}
	return nil
}

func procStatPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/stat" }

// statField returns field n (counted from 1, as proc(5) does) of a
// /proc/PID/stat line, or "" if it has none.
func statField(b []byte, n int) string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || n < 3 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if n-3 >= len(f) {
		return ""
	}
	return f[n-3]
}

// testProcField returns field n of pid's /proc/PID/stat.
func testProcField(t *testing.T, pid, n int) string {
	t.Helper()
	b, err := os.ReadFile(procStatPath(pid))
	if err != nil {
		t.Fatal(err)
	}
	return statField(b, n)
}

// waitProcState waits until pid is in the given state (as /proc/PID/stat
// spells it: T for stopped).
func waitProcState(t *testing.T, pid int, state string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for testProcField(t, pid, 3) != state {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("process %d is in state %s, want %s", pid, testProcField(t, pid, 3), state)
		}
	}
}

// running reports whether pid is alive and not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(procStatPath(pid))
	if err != nil {
		return false
	}
	s := statField(b, 3)
	return s != "Z" && s != "X" && s != ""
}

// Issue 9, item 5: exec commands ran in a process group of their own and
// were re-parented to init when the agent was SIGKILLed, still running.
// A shell's own children must go too, not only the direct child.
func TestKilledAgentTakesItsCommandsWithIt(t *testing.T) {
	dir := t.TempDir()
	fifo, pids := fifoPIDs(t, dir)
	agent := startHelperAgent(t, filepath.Join(dir, "exec"),
		fmt.Sprintf(`sleep 1000 & echo "$$ $!" > '%s'; wait`, fifo))
	got := receivePIDs(t, pids, 2) // the shell, and the sleep it started
	agent.kill(t)
	for _, pid := range got {
		execWaitGone(t, pid)
	}
}

// Issue 9, item 5: a restarted agent ran its command again while the one
// an earlier, killed run started was still running. Here the guard that
// would have killed that run dies with the agent, as if both were killed at
// once (the agent is stopped first, so that it cannot act on its guard's
// death): the restarted agent must kill the leftovers before its command
// starts.
func TestRestartedAgentNeverOverlapsALeftoverRun(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "exec")
	fifo, pids := fifoPIDs(t, dir)
	agent := startHelperAgent(t, state, fmt.Sprintf(`sleep 1000 & echo "$$ $!" > '%s'; wait`, fifo))
	got := receivePIDs(t, pids, 2)
	shell, sleeper := got[0], got[1]

	leader, err := strconv.Atoi(testProcField(t, shell, 5)) // the group's leader
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(agent.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitProcState(t, agent.cmd.Process.Pid, "T")
	if err := syscall.Kill(leader, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	execWaitGone(t, leader)
	agent.kill(t)
	if !running(sleeper) {
		t.Fatalf("setup: the shell's child %d is gone already; nothing was left over", sleeper)
	}

	// The restarted agent's command reports what it finds still running.
	seen := filepath.Join(dir, "seen")
	check := fmt.Sprintf(`for p in %d %d; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null) || s=gone; echo "$p ${s:-gone}"; done > '%s'`,
		shell, sleeper, seen)
	again := startHelperAgent(t, state, check)
	if err := again.wait(t); err != nil {
		t.Fatalf("restarted agent: %v", err)
	}
	if log := again.stderr.String(); !strings.Contains(log, "killed processes an earlier run of the agent left running") {
		t.Errorf("the restarted agent did not log killing the leftovers:\n%s", log)
	}
	report, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(report)), "\n") {
		pid, st, _ := strings.Cut(line, " ")
		if st != "gone" && st != "Z" {
			t.Errorf("the restarted agent's command ran while %s of the earlier run was still running (state %s)", pid, st)
		}
	}
	if entries, err := os.ReadDir(state); err != nil || len(entries) != 0 {
		t.Errorf("run records left after both runs: %v (%v)", entries, err)
	}
}
