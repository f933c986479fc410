package resources

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// execPIDFromFIFO makes a FIFO in dir and returns its path and a channel that
// yields the pid a command writes into it.
func execPIDFromFIFO(t *testing.T, dir string) (string, <-chan int) {
	t.Helper()
	fifo := filepath.Join(dir, "pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pids := make(chan int, 1)
	go func() {
		defer close(pids)
		b, err := os.ReadFile(fifo) // blocks until a writer opens and closes it
		if err != nil {
			return
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids <- pid
		}
	}()
	t.Cleanup(func() {
		// Unblock the reader if no command ever opened the FIFO.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-pids
	})
	return fifo, pids
}

// execWaitGone waits until pid has exited (or is a zombie nobody reaped yet).
// Polling is unavoidable: nothing notifies about another process's death.
func execWaitGone(t *testing.T, pid int) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("process %d still alive: %s", pid, b)
		}
	}
}

func TestExecLeavesNoProcessBehind(t *testing.T) {
	// The grandchild writes its pid into the FIFO, then sleeps.
	const (
		child = `sh -c 'echo $$ > "$1"; exec sleep 100' inner FIFO; echo unreachable`
		// It ignores SIGTERM and keeps the output open: only SIGKILL, after
		// the grace, ends it.
		deaf = `sh -c 'trap "" TERM; echo $$ > "$1"; exec sleep 100' inner FIFO`
	)
	for _, tc := range []struct {
		name   string
		e      Exec
		watch  bool // run Watch rather than CheckApply
		cancel bool
	}{
		{"cancel", Exec{Shell: "/bin/sh", Cmd: child}, false, true},
		{"cancel ignoring SIGTERM", Exec{Shell: "/bin/sh", Cmd: deaf}, false, true},
		{"watch cancel ignoring SIGTERM", Exec{Cmd: "true", WatchShell: "/bin/sh", WatchCmd: deaf}, true, true},
		{"exit leaving detached child", Exec{Shell: "/bin/sh", Cmd: `sleep 100 >/dev/null 2>&1 & echo $! > FIFO`}, false, false},
		{"exit leaving child holding output", Exec{Shell: "/bin/sh", Cmd: `sleep 100 & echo $! > FIFO`}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			fifo, pids := execPIDFromFIFO(t, t.TempDir())
			tc.e.name = "x"
			tc.e.Cmd = strings.ReplaceAll(tc.e.Cmd, "FIFO", fifo)
			tc.e.WatchCmd = strings.ReplaceAll(tc.e.WatchCmd, "FIFO", fifo)
			e, _ := newTestExec(t, &tc.e)
			e.grace = 200 * time.Millisecond
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				if tc.watch {
					done <- e.Watch(ctx)
					return
				}
				_, err := e.CheckApply(ctx, true)
				done <- err
			}()

			var pid int
			select {
			case p, ok := <-pids:
				if !ok {
					t.Fatal("the command wrote no pid")
				}
				pid = p
			case <-time.After(10 * time.Second):
				t.Fatal("the command wrote no pid in time")
			}
			if tc.cancel {
				cancel()
			}
			select {
			case err := <-done:
				if tc.cancel && !tc.watch {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("error = %v, want context.Canceled", err)
					}
				} else if err != nil {
					t.Errorf("error = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the command was not ended in time")
			}
			execWaitGone(t, pid)
		})
	}
}

// A missing or unusable working directory was reported as "fork/exec
// /proc/self/exe: no such file or directory", which names the guard, not
// the directory.
func TestExecBadCwdIsNamedNotTheGuard(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cwd, want string
		is        error
	}{
		{filepath.Join(dir, "missing"), "chdir " + filepath.Join(dir, "missing") + ": no such file or directory", os.ErrNotExist},
		{file, "chdir " + file + ": not a directory", syscall.ENOTDIR},
	} {
		e, _ := newTestExec(t, &Exec{name: "x", Cmd: "true", Cwd: tc.cwd})
		_, err := e.CheckApply(t.Context(), true)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "/proc/self/exe") {
			t.Errorf("cwd %s: error = %v, want one saying %q, not naming /proc/self/exe", tc.cwd, err, tc.want)
		}
		if !errors.Is(err, tc.is) {
			t.Errorf("cwd %s: error %v does not wrap %v", tc.cwd, err, tc.is)
		}
	}
}

// Without /proc (a chroot, a minimal container) every command failed with
// "fork/exec /proc/self/exe: no such file or directory", which does not say
// what is missing. This runs in a sandbox with a tmpfs over /proc.
func TestExecWithoutProcSaysProcIsNeeded(t *testing.T) {
	if !inSandbox(t) {
		runInSandbox(t)
		return
	}
	if err := syscall.Mount("tmpfs", "/proc", "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount a tmpfs over /proc: %v", err)
	}
	if _, err := os.Lstat("/proc/self/exe"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("/proc/self/exe is still there: %v", err)
	}
	e, _ := newTestExec(t, &Exec{name: "x", Cmd: "true"})
	_, err := e.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "needs /proc mounted") {
		t.Errorf("error = %v, want one saying that /proc must be mounted", err)
	}
}

// With a process that left the command's group holding its output, wait
// waited the grace for the output, then release waited it a second time.
func TestHeldOutputIsWaitedForOnlyOneGrace(t *testing.T) {
	// Long enough that a loaded machine's delays stay well inside the one
	// grace of slack between the right duration and the wrong one.
	const grace = 3 * time.Second
	fifo, pids := fifoPIDs(t, t.TempDir())
	c := command{shell: "/bin/sh", grace: grace,
		line: `setsid sh -c 'echo $$ > "$0"; exec sleep 1000' '` + fifo + `' &`}
	p, err := c.start(t.Context(), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = p.wait()
	took := time.Since(began)
	detached := receivePIDs(t, pids, 1)[0]
	if !errors.Is(err, errOutputHeld) {
		t.Errorf("wait() = %v, want errOutputHeld", err)
	}
	// The grace cannot pass before it has: twice it means two waits.
	if took >= 2*grace {
		t.Errorf("wait took %v with a grace of %v: the grace was waited twice", took, grace)
	}
	if !running(detached) {
		t.Error("the process that left the group was killed")
	}
}

// The guard is a Go program: with GODEBUG=inittrace=1 in the command's
// environment, its runtime wrote a trace of its own start into the
// command's stderr.
func TestGuardRuntimeWritesNothingIntoTheCommandsOutput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := command{shell: "/bin/sh", line: `printf %s "$GODEBUG"`, env: []string{"GODEBUG=inittrace=1"}}
	p, err := c.start(t.Context(), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "inittrace=1"; got != want {
		t.Errorf("the command's GODEBUG = %q, want %q", got, want)
	}
	if stderr.Len() > 0 {
		t.Errorf("the command's stderr holds what it did not write:\n%s", stderr.String())
	}
}
