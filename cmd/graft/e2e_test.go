package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// agent is a graft process started by a test.
type agent struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	grew chan struct{} // signalled on every write to log
	done chan struct{}
	err  error
}

func (a *agent) Write(p []byte) (int, error) {
	a.mu.Lock()
	a.log.Write(p)
	a.mu.Unlock()
	select {
	case a.grew <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (a *agent) output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// startAgent runs the test binary as graft with args (a `run` gets
// --cluster-addr 127.0.0.1:0).
func startAgent(t *testing.T, args ...string) *agent {
	t.Helper()
	return startProcess(t, exec.Command(os.Args[0], testClusterAddr(args)...))
}

// startProcess starts cmd, which runs the test binary as graft (directly or
// through another program), its output collected, and kills it when the
// test ends.
func startProcess(t *testing.T, cmd *exec.Cmd) *agent {
	t.Helper()
	a := &agent{t: t, cmd: cmd, grew: make(chan struct{}, 1), done: make(chan struct{})}
	// The race detector sleeps a second before a process exits unless told
	// not to; timing assertions must not see that.
	if a.cmd.Env == nil {
		a.cmd.Env = os.Environ()
	}
	a.cmd.Env = append(a.cmd.Env, "GRAFT_TEST_BINARY=1", "GORACE=atexit_sleep_ms=0")
	if a.cmd.Stdout == nil {
		a.cmd.Stdout, a.cmd.Stderr = a, a
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", a.output())
		}
	})
	return a
}

// waitFor waits until cond holds on the output, failing after timeout.
func (a *agent) waitFor(timeout time.Duration, what string, cond func(string) bool) {
	a.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond(a.output()) {
		select {
		case <-a.grew:
		case <-a.done:
			if !cond(a.output()) {
				a.t.Fatalf("agent exited (%v) before %s", a.err, what)
			}
		case <-deadline.C:
			a.t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func (a *agent) waitLog(timeout time.Duration, substr string) {
	a.t.Helper()
	a.waitFor(timeout, fmt.Sprintf("%q in the log", substr), func(s string) bool { return strings.Contains(s, substr) })
}

// exitCode waits for the process to exit and returns its code. An agent
// still running after timeout is sent SIGQUIT, so that the test's log
// holds its goroutines' stacks (Go prints them on SIGQUIT), and the test
// fails.
func (a *agent) exitCode(timeout time.Duration) int {
	a.t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		_ = a.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
		}
		a.t.Fatalf("agent still running after %v; sent SIGQUIT: its goroutines are in the agent output below", timeout)
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		return ee.ExitCode()
	}
	if a.err != nil {
		a.t.Fatal(a.err)
	}
	return 0
}

func (a *agent) signal(sig os.Signal) {
	a.t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		a.t.Fatal(err)
	}
}

// While graft runs, deleting or overwriting a managed file is repaired,
// again and again. The test watches the file, not the log: ten changes
// within a second without a run that finds the file in state make the
// engine call the vertex flapping and turn its per-run lines down to debug
// (engine/flap.go), which a loaded machine reaches by coalescing the
// engine's own write event with the next drift (CI failed so once). How
// fast a repair is belongs to make bench (drift-to-repair latency).
func TestDriftIsRepairedEveryTime(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "managed", "f")
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: f
    path: %s
    content: "wanted\n"
    state: exists
`, p))
	a := startAgent(t, "run", "--tmp-prefix", "yaml", g)
	a.waitLog(10*time.Second, "resource applied")

	for i := range 10 {
		start := time.Now()
		if i%2 == 0 {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("drift\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitContent(t, p, "wanted\n")
		t.Logf("repair %d took %v", i, time.Since(start))
	}
	a.signal(syscall.SIGTERM)
	if code := a.exitCode(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// The first SIGINT lets a running CheckApply finish, then graft exits 0.
func TestFirstSignalFinishesInFlightWork(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  exec:
  - name: slow
    cmd: touch %[1]s/started && sleep 1 && touch %[1]s/finished
    shell: /bin/sh
`, dir))
	a := startAgent(t, "run", "--tmp-prefix", "yaml", g)
	waitFile(t, filepath.Join(dir, "started"))
	a.signal(os.Interrupt)
	if code := a.exitCode(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "finished")); err != nil {
		t.Error("the in-flight command did not finish before exit")
	}
}

// GNU timeout stops its command with two SIGTERMs, one to the command and
// one to its process group, microseconds apart: graft takes them as one
// request to stop, lets the running command finish and exits 0, rather
// than cancelling it as a second signal would (exit 130).
func TestGNUTimeoutsTwoSIGTERMsLetRunningWorkFinish(t *testing.T) {
	timeout, err := exec.LookPath("timeout")
	if err != nil {
		t.Skip("this machine has no timeout command (GNU coreutils)")
	}
	dir := t.TempDir()
	// The command ignores SIGTERM, so that the signal timeout sends its
	// process group cannot stop it: only graft cancelling it can.
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  exec:
  - name: slow
    cmd: trap '' TERM INT; touch %[1]s/started && sleep 1 && touch %[1]s/finished
    shell: /bin/sh
`, dir))
	// --preserve-status: timeout exits with graft's exit code.
	a := startProcess(t, exec.Command(timeout, append([]string{"--preserve-status", "600", os.Args[0]},
		testClusterAddr([]string{"run", "--tmp-prefix", "yaml", g})...)...))
	waitFile(t, filepath.Join(dir, "started"))
	// SIGALRM is timeout's own deadline: it then signals as it would at
	// the end of the 600 s.
	a.signal(syscall.SIGALRM)
	if code := a.exitCode(20 * time.Second); code != 0 {
		t.Errorf("exit code %d after timeout's SIGTERMs, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "finished")); err != nil {
		t.Error("the running command was cancelled: timeout's two SIGTERMs counted as two stop requests")
	}
	if out := a.output(); strings.Contains(out, "second interrupt") {
		t.Error("graft logged a second interrupt after one timeout")
	}
}

// A second SIGINT cancels running CheckApply calls and graft exits within
// seconds, killing the command it ran.
func TestSecondSignalCancelsRunningWork(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  exec:
  - name: stuck
    cmd: echo $$ > %s.tmp && mv %[1]s.tmp %[1]s && exec sleep 300
    shell: /bin/sh
`, pidFile))
	a := startAgent(t, "run", "--tmp-prefix", "yaml", g)
	waitFile(t, pidFile)
	a.signal(os.Interrupt)
	a.waitLog(10*time.Second, "waiting for running resources")
	// The agent logs that line once it has taken the first signal; one
	// within repeatWindow of it would count as the same.
	time.Sleep(repeatWindow)
	start := time.Now()
	a.signal(os.Interrupt)
	code := a.exitCode(15 * time.Second)
	if code == 0 {
		t.Error("exit code 0 after a forced stop, want non-zero")
	}
	t.Logf("forced stop took %v", time.Since(start))
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(raw), &pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the command (pid %d) survived the forced stop", pid)
	}
}

// Three independent jobs fanning into a fourth run at the same time, and
// the fourth after all three. Each of the three waits (20 s at most) until
// all three have started, so a build that ran them one after another fails
// whatever the machine's load; the fourth checks that all three finished.
func TestFanInRunsBranchesInParallel(t *testing.T) {
	dir := t.TempDir()
	branch := func(name string) string {
		return fmt.Sprintf(`touch %[1]s/started-%[2]s; i=0; `+
			`while [ ! -e %[1]s/started-a ] || [ ! -e %[1]s/started-b ] || [ ! -e %[1]s/started-c ]; do `+
			`i=$((i+1)); [ $i -gt 2000 ] && exit 1; sleep 0.01; done; touch %[1]s/done-%[2]s`, dir, name)
	}
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  exec:
  - {name: a, shell: /bin/sh, cmd: %q}
  - {name: b, shell: /bin/sh, cmd: %q}
  - {name: c, shell: /bin/sh, cmd: %q}
  - {name: last, shell: /bin/sh, cmd: "test -e %[4]s/done-a && test -e %[4]s/done-b && test -e %[4]s/done-c && touch %[4]s/last"}
edges:
- {from: {kind: exec, name: a}, to: {kind: exec, name: last}}
- {from: {kind: exec, name: b}, to: {kind: exec, name: last}}
- {from: {kind: exec, name: c}, to: {kind: exec, name: last}}
`, branch("a"), branch("b"), branch("c"), dir))
	a := startAgent(t, "run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code := a.exitCode(time.Minute); code != 0 {
		t.Fatalf("exit code %d: the three jobs did not run at the same time, or the last ran before them", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "last")); err != nil {
		t.Errorf("the last job did not run after the three: %v", err)
	}
}

// waitFile waits for a file to appear.
func waitFile(t *testing.T, p string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s did not appear", p)
		}
	}
}
