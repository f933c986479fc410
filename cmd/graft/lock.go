package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

// The exit codes of `graft lock` besides the command's own.
const (
	// exitLockLost: the slot was lost while the command ran, and the
	// command was sent SIGTERM (EX_TEMPFAIL of sysexits.h: try again).
	exitLockLost = 75
	// exitLockTimeout: no slot within --timeout (as GNU timeout's 124).
	exitLockTimeout = 124
	// exitStopped: stopped by a signal while waiting for the slot.
	exitStopped = 130
	// exitCannotRun and exitNotFound: the command could not be started, or
	// was not found (as a shell's 126 and 127).
	exitCannotRun = 126
	exitNotFound  = 127
)

// lockKillAfter is how long a command whose slot was lost has, after
// SIGTERM, before it is killed.
const lockKillAfter = 10 * time.Second

// lockReleaseTimeout bounds the release once the command has exited.
const lockReleaseTimeout = 30 * time.Second

func lockCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "lock",
		Usage:     "run a command while holding a slot of a cluster-wide semaphore",
		ArgsUsage: "ID -- COMMAND [ARGS...]",
		Description: "lock waits for a slot of the cluster semaphore ID (the one graphs name @@ID), then runs\n" +
			"COMMAND with GRAFT_LOCK_ID and GRAFT_LOCK_TOKEN (the slot's fencing token) in its\n" +
			"environment, gives the slot back when it exits, and exits with its status. Every holder\n" +
			"of ID must give the same --count. Interrupting the wait gives up the place in the queue.\n\n" +
			"If the slot is lost while COMMAND runs (the cluster took it back, the agent lost the\n" +
			"cluster or stopped), COMMAND is sent SIGTERM (SIGKILL 10s later if still running) and\n" +
			"lock exits 75. A stop signal to lock is passed on to COMMAND as SIGTERM, a second as\n" +
			"SIGKILL. Other exit codes: 124 no slot within --timeout; 130 interrupted while waiting;\n" +
			"126 COMMAND could not run, 127 not found; 1 an error (no agent, say); 128+N COMMAND killed\n" +
			"by signal N.",
		Flags: append(clientFlags(),
			&cli.Int64Flag{Name: "count", Value: 1, Usage: "the semaphore's number of slots, `N`"},
			&cli.DurationFlag{Name: "timeout", Usage: "wait at most this long for a slot (default: no limit)"},
		),
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1], args[2:]...)
			}
			if len(args) < 2 {
				return usageError("lock: want a semaphore id and a command (graft lock ID -- COMMAND [ARGS...])")
			}
			if n := c.Int64("count"); n < 1 {
				return usageError("--count %d: want at least 1", n)
			}
			if c.IsSet("timeout") && c.Duration("timeout") < 0 {
				return usageError("--timeout %v: want a positive duration", c.Duration("timeout"))
			}
			client, t, err := dialAgent(c)
			if err != nil {
				return err
			}
			defer client.Close()
			slot, err := waitSlot(c, client, args[0])
			if err != nil {
				return t.explain(err)
			}
			return runLocked(c.Context, e, slot, args[1], args[2:])
		},
	}
}

// waitSlot waits for a slot of id as the flags say.
func waitSlot(c *cli.Context, client *api.Client, id string) (*api.Slot, error) {
	ctx := c.Context
	if c.IsSet("timeout") {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Duration("timeout"))
		defer cancel()
	}
	slot, err := client.Acquire(ctx, id, c.Int64("count"))
	switch {
	case err == nil:
		return slot, nil
	case c.Context.Err() != nil:
		return nil, &exitError{code: exitStopped, err: fmt.Errorf("lock %s: interrupted while waiting for a slot", id)}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return nil, &exitError{code: exitLockTimeout, err: fmt.Errorf("lock %s: no slot within %v", id, c.Duration("timeout"))}
	}
	return nil, fmt.Errorf("lock %s: %w", id, err)
}

// runLocked runs the command under slot, gives the slot back when it
// exits, and returns what the exit code should say.
func runLocked(ctx context.Context, e *env, slot *api.Slot, name string, args []string) (err error) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockReleaseTimeout)
		defer cancel()
		if rerr := slot.Release(rctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	// The command's output and lock's own messages share stderr: unless
	// it is a file, exec copies the command's into it on a goroutine.
	stderr := &lockedWriter{w: e.stderr}
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, stderr
	if f, ok := e.stderr.(*os.File); ok {
		cmd.Stderr = f // handed to the command as it is
	}
	cmd.Env = append(os.Environ(), "GRAFT_LOCK_ID="+slot.ID(), "GRAFT_LOCK_TOKEN="+strconv.FormatUint(slot.Token(), 10))
	// If lock dies (SIGKILL), its connection closes and the agent gives
	// the slot back: the command must not run on without it. The kernel
	// signals the child when the thread that started it ends, so that
	// thread stays this goroutine's until the command has exited.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		code := exitCannotRun
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = exitNotFound
		}
		return &exitError{code: code, err: fmt.Errorf("lock %s: %w", slot.ID(), err)}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	lost, stopped := slot.Lost(), ctx.Done()
	var killAfter <-chan time.Time
	for {
		select {
		case werr := <-exited:
			if lost == nil { // it was lost while the command ran
				return &exitError{code: exitLockLost, err: fmt.Errorf("lock %s: the command was terminated: %w", slot.ID(), api.ErrSlotLost)}
			}
			return commandExit(slot.ID(), werr)
		case <-lost:
			fmt.Fprintf(stderr, "graft: lock %s: %v; sending SIGTERM to the command\n", slot.ID(), slot.Err())
			_ = cmd.Process.Signal(syscall.SIGTERM)
			lost, killAfter = nil, time.After(lockKillAfter)
		case <-stopped:
			_ = cmd.Process.Signal(syscall.SIGTERM) // a stop signal to lock, passed on
			stopped = nil
		case <-e.hard:
			_ = cmd.Process.Kill()
		case <-killAfter:
			fmt.Fprintf(stderr, "graft: lock %s: the command still runs %v after SIGTERM; killing it\n", slot.ID(), lockKillAfter)
			_ = cmd.Process.Kill()
		}
	}
}

// commandExit returns the error that makes lock exit as the command did:
// with its status, or 128+N if signal N killed it.
func commandExit(id string, err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return fmt.Errorf("lock %s: %w", id, err)
		}
		return nil
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	return &exitError{code: code, err: fmt.Errorf("lock %s: the command %w", id, ee), quiet: true}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
