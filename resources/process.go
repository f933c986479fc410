package resources

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// errOutputHeld is what wait returns for a command that exited zero but
// left processes holding its output open past the grace. Those still in
// its process group have been killed with it; any that left the group
// (setsid) still run, and what they write is no longer read.
var errOutputHeld = errors.New("the command exited but processes it started kept its output open")

// exitError reports a command that did not exit zero: its exit status or
// the signal that ended it.
type exitError struct{ status syscall.WaitStatus }

func (e *exitError) Error() string { return describeStatus(e.status) }

// ExitCode is the exit code, or -1 if a signal ended the command.
func (e *exitError) ExitCode() int { return exitCode(e.status) }

// describeStatus says how a process ended, as "exit status 3" or
// "signal: killed".
func describeStatus(ws syscall.WaitStatus) string {
	var s string
	switch {
	case ws.Exited():
		s = fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		s = "signal: " + ws.Signal().String()
	default:
		s = fmt.Sprintf("wait status %#x", uint32(ws))
	}
	if ws.CoreDump() {
		s += " (core dumped)"
	}
	return s
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Exited() {
		return ws.ExitStatus()
	}
	return -1
}

// startError is a command the guard could not start.
type startError struct {
	msg   string
	errno syscall.Errno // 0 if unknown
}

func (e *startError) Error() string { return e.msg }

func (e *startError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// process is a started command, run under its guard (see guard.go). Its
// wait method must be called exactly once.
type process struct {
	guard *exec.Cmd
	pgid  int // the guard's pid, which is the group's ID
	pid   int // the command's pid
	grace time.Duration

	lifeline   *os.File      // write end: closing it makes the guard kill the group
	status     *os.File      // read end of the guard's reports
	outR, errR *os.File      // read ends of the command's output
	copied     chan struct{} // closed once both outputs reached end-of-file
	exited     chan struct{} // closed once the command's end is known

	stopCancel func() bool   // stops cancel from being called
	cancelDone chan struct{} // closed when cancel, once called, returns

	ended syscall.WaitStatus // how the command ended, once wait returned
	runs  *execRuns
	token string
	log   *slog.Logger
}

// start starts the command under a guard, in a process group of its own,
// with stdin from /dev/null and its output written to stdout and stderr
// (from goroutines that wait joins). When ctx is done the whole group gets
// SIGTERM; whatever is still running once the grace has passed gets
// SIGKILL. If the agent dies, however it dies, the guard kills the group.
// An error means the command did not start and nothing is left running.
func (c command) start(ctx context.Context, stdout, stderr io.Writer) (*process, error) {
	argv, err := c.argv()
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("start: %w", context.Cause(ctx))
	}
	// The program is found in the agent's PATH, as os/exec finds it.
	prog := exec.Command(argv[0])
	if prog.Err != nil {
		return nil, fmt.Errorf("start: %w", prog.Err)
	}
	p := &process{grace: c.grace, runs: c.runs, log: c.log,
		copied: make(chan struct{}), exited: make(chan struct{}), cancelDone: make(chan struct{})}
	if p.grace <= 0 {
		p.grace = defaultKillGrace
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	env := c.environ()
	if c.runs != nil {
		if p.token, err = c.runs.begin(ctx, c.owner, p.log); err != nil {
			return nil, err
		}
		env = append(env, runEnv+"="+p.token)
	}
	env = append(guardEnviron(env), guardEnv+"=1")
	if err := p.spawn(c.dir, prog.Path, argv, env, stdout, stderr); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if c.runs != nil {
		if err := c.runs.record(p.token, c.owner, p.pgid); err != nil {
			p.abandon()
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	if _, err := p.lifeline.Write([]byte{1}); err != nil { // the go-ahead
		p.abandon()
		return nil, fmt.Errorf("start: exec guard: %w", err)
	}
	if err := p.readStart(); err != nil {
		p.abandon()
		return nil, fmt.Errorf("start: %w", err)
	}
	p.stopCancel = context.AfterFunc(ctx, p.cancel)
	return p, nil
}

// environ is the environment the command gets: env, or the agent's with
// PWD set to dir as os/exec sets it.
func (c command) environ() []string {
	if c.env != nil {
		return slices.Clone(c.env)
	}
	env := os.Environ()
	if c.dir != "" {
		if pwd, err := filepath.Abs(c.dir); err == nil {
			env = append(env, "PWD="+pwd)
		}
	}
	return env
}

// guardExe is where the guard is started from: the running binary, even if
// its file was replaced or removed since.
const guardExe = "/proc/self/exe"

// spawn starts the guard with its pipes, and the goroutines that copy the
// command's output.
func (p *process) spawn(dir, path string, argv, env []string, stdout, stderr io.Writer) error {
	var ends [8]*os.File // read and write end of: lifeline, status, stdout, stderr
	for i := 0; i < len(ends); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeFiles(ends[:i]...)
			return err
		}
		ends[i], ends[i+1] = r, w
	}
	guard := &exec.Cmd{
		Path:        guardExe,
		Args:        append([]string{guardArg0, dir, path}, argv...),
		Env:         env,
		Stdout:      ends[5],
		Stderr:      ends[7],
		ExtraFiles:  []*os.File{ends[0], ends[3]}, // fd 3: lifeline, fd 4: status
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err := guard.Start()
	closeFiles(ends[0], ends[3], ends[5], ends[7]) // the guard has its own copies
	if err != nil {
		closeFiles(ends[1], ends[2], ends[4], ends[6])
		if _, lerr := os.Lstat(guardExe); lerr != nil {
			// Without /proc (a chroot, a minimal container) every
			// command fails this way: say what is missing.
			return fmt.Errorf("exec guard: %w: running commands needs /proc mounted, "+
				"since each runs under a copy of graft started from %s", lerr, guardExe)
		}
		return fmt.Errorf("exec guard: %w", err)
	}
	p.guard, p.pgid = guard, guard.Process.Pid
	p.lifeline, p.status, p.outR, p.errR = ends[1], ends[2], ends[4], ends[6]
	var copies sync.WaitGroup
	for _, c := range []struct {
		w io.Writer
		r *os.File
	}{{stdout, p.outR}, {stderr, p.errR}} {
		copies.Go(func() { _, _ = io.Copy(c.w, c.r) })
	}
	go func() {
		copies.Wait()
		close(p.copied)
	}()
	return nil
}

func closeFiles(files ...*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// readStart reads the guard's report on starting the command.
func (p *process) readStart() error {
	var head [5]byte
	n, err := io.ReadFull(p.status, head[:])
	switch {
	case err == nil && head[0] == guardStarted:
		p.pid = int(binary.LittleEndian.Uint32(head[1:]))
		return nil
	case err == nil && head[0] == guardFailed:
		msg, _ := io.ReadAll(p.status) // the guard exits after writing it
		return &startError{msg: string(msg), errno: syscall.Errno(binary.LittleEndian.Uint32(head[1:]))}
	default:
		return fmt.Errorf("the exec guard ended before starting the command (read %d bytes: %v)", n, err)
	}
}

// abandon ends a process whose start failed: it kills the group, reaps
// the guard and releases the rest.
func (p *process) abandon() {
	p.lifeline.Close()
	_ = signalGroup(p.pgid, syscall.SIGKILL) // the guard is not reaped yet: its ID is ours
	_ = p.guard.Wait()
	p.release(p.grace)
}

// cancel runs when the context of a started command is done: SIGTERM to
// the group, then SIGKILL once the grace has passed.
func (p *process) cancel() {
	defer close(p.cancelDone)
	select {
	case <-p.exited:
		return
	default:
	}
	_ = signalGroup(p.pgid, syscall.SIGTERM)
	t := time.NewTimer(p.grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = signalGroup(p.pgid, syscall.SIGKILL)
	}
}

// wait waits for the command to exit and for its output, then kills
// whatever is left of its process group, so that no process the command
// started outlives it; processes that hold the output open get the grace
// to finish first. It returns nil if the command exited zero, errOutputHeld
// if it did but its output stayed open past the grace, an *exitError if it
// did not exit zero.
func (p *process) wait() error {
	var buf [4]byte
	_, err := io.ReadFull(p.status, buf[:])
	reported := err == nil // else the guard died: the group was killed
	close(p.exited)
	held := false
	if reported {
		t := time.NewTimer(p.grace)
		select {
		case <-p.copied:
		case <-t.C:
		}
		t.Stop()
		select {
		case <-p.copied:
		default:
			held = true
		}
	}
	// The guard is alive or not yet reaped, so the group's ID is still
	// ours: kill what is left of it, the guard included.
	_ = signalGroup(p.pgid, syscall.SIGKILL)
	p.lifeline.Close()
	if !p.stopCancel() {
		<-p.cancelDone // it may be signalling the group
	}
	_ = p.guard.Wait() // only now may the group's ID be reused
	p.ended = syscall.WaitStatus(binary.LittleEndian.Uint32(buf[:]))
	if !reported {
		p.ended, _ = p.guard.ProcessState.Sys().(syscall.WaitStatus)
	}
	grace := p.grace
	if held {
		grace = 0 // it has passed once already
	}
	p.release(grace)
	switch {
	case !p.ended.Exited() || p.ended.ExitStatus() != 0:
		return &exitError{status: p.ended}
	case held:
		return errOutputHeld
	}
	return nil
}

// release closes what is left of the process once the guard is reaped.
// The group is dead; a process that left it may still hold the output
// open: the output is then cut after grace. A grace of zero cuts it at
// once, and may lose what the group's processes wrote just before they
// were killed.
func (p *process) release(grace time.Duration) {
	t := time.NewTimer(grace)
	select {
	case <-p.copied:
	case <-t.C:
	}
	t.Stop()
	closeFiles(p.outR, p.errR, p.status)
	<-p.copied
	if p.runs != nil {
		if err := p.runs.end(p.token); err != nil {
			p.log.Warn("could not remove the record of a finished command", "err", err)
		}
	}
}

// state describes how the command ended, as "exit status 3" or
// "signal: killed". It is only meaningful after wait.
func (p *process) state() string { return describeStatus(p.ended) }

// exitCode is the exit code, or -1 if a signal ended the command.
func (p *process) exitCode() int { return exitCode(p.ended) }

// signalGroup sends sig to every process in the group led by pid. A group
// that no longer exists is reported as os.ErrProcessDone.
func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("signal group: bad pid %d", pid)
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
