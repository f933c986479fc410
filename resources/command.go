package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/shlex"
)

// defaultKillGrace is how long a cancelled command's process group has
// between SIGTERM and SIGKILL, and how long Wait waits for output pipes
// that a leftover process holds open after the command itself exited.
const defaultKillGrace = 3 * time.Second

// command is one command line as a resource declares it: what to run, how,
// where, and with which environment. The zero value of every field but line
// means "as the agent does".
type command struct {
	// line is the command. With shell set it is handed to the shell as is;
	// with args set it is the program, used verbatim; otherwise it is split
	// into words with shell-like quoting (but no expansion).
	line string
	// args are the program's arguments. They cannot be combined with shell.
	args []string
	// shell, if set, runs line as: shell -c line.
	shell string
	// dir is the working directory; empty means the agent's.
	dir string
	// env is the exact environment, as KEY=VALUE; nil inherits the agent's.
	env []string
	// grace is the time between SIGTERM and SIGKILL; zero means
	// defaultKillGrace.
	grace time.Duration
}

// argv returns the program and its arguments.
func (c command) argv() ([]string, error) {
	switch {
	case c.shell != "":
		return []string{c.shell, "-c", c.line}, nil
	case len(c.args) > 0:
		return append([]string{strings.TrimSpace(c.line)}, c.args...), nil
	}
	words, err := shlex.Split(c.line)
	if err != nil {
		return nil, fmt.Errorf("split %q: %w", c.line, err)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%q holds no command", c.line)
	}
	return words, nil
}

// process is a started command. Its wait method must be called exactly once.
type process struct {
	cmd *exec.Cmd
}

// start starts the command in a process group of its own, with stdin from
// /dev/null and its output written to stdout and stderr (which os/exec
// feeds from goroutines that wait joins). When ctx is done the whole group
// gets SIGTERM; whatever is still running once the grace has passed gets
// SIGKILL. An error means the command did not start and nothing is left
// running.
func (c command) start(ctx context.Context, stdout, stderr io.Writer) (*process, error) {
	argv, err := c.argv()
	if err != nil {
		return nil, err
	}
	grace := c.grace
	if grace <= 0 {
		grace = defaultKillGrace
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	// After the grace os/exec kills the group leader and closes the output
	// pipes; wait then kills the rest of the group.
	cmd.WaitDelay = grace
	if err := cmd.Start(); err != nil {
		// A missing working directory shows up as the program not found.
		if c.dir != "" {
			return nil, fmt.Errorf("start (cwd %q): %w", c.dir, err)
		}
		return nil, fmt.Errorf("start: %w", err)
	}
	return &process{cmd: cmd}, nil
}

// wait waits for the command to exit and its output to be copied, then kills
// whatever is left of its process group, so that no process the command
// started outlives it. It returns what [exec.Cmd.Wait] returns.
func (p *process) wait() error {
	err := p.cmd.Wait()
	// The group's id is the leader's pid. The leader has just been reaped, so
	// the id could in principle be reused; the kernel hands out pids
	// cyclically, which makes that a wrap-around away.
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	return err
}

// state describes how the process ended, as "exit status 3" or
// "signal: killed". It is only meaningful after wait.
func (p *process) state() string {
	if p.cmd.ProcessState == nil {
		return "not exited"
	}
	return p.cmd.ProcessState.String()
}

// exitCode is the exit code, or -1 if the process was killed by a signal.
func (p *process) exitCode() int {
	return p.cmd.ProcessState.ExitCode()
}

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

// output is what a finished command left behind.
type output struct {
	stdout, stderr *tailBuffer
	// combined is stdout and stderr interleaved as they were written.
	combined *tailBuffer
	// code is the exit code, -1 if a signal ended the command.
	code int
	// state is how it ended, as "exit status 3".
	state string
	// err is what [exec.Cmd.Wait] returned.
	err error
}

// run runs the command to completion and keeps the tail of its output. An
// error means it could not start; how it ended is in the output.
func (c command) run(ctx context.Context) (output, error) {
	out := output{stdout: newTailBuffer(maxOutput), stderr: newTailBuffer(maxOutput),
		combined: newTailBuffer(maxOutput)}
	// os/exec copies each stream on a goroutine of its own; the combined
	// buffer is shared, so it takes a lock.
	both := &lockedWriter{w: out.combined}
	p, err := c.start(ctx, io.MultiWriter(out.stdout, both), io.MultiWriter(out.stderr, both))
	if err != nil {
		return out, err
	}
	out.err = p.wait()
	out.code = p.exitCode()
	out.state = p.state()
	return out, nil
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// maxOutput is how much of each output stream a command run keeps: the
// last 64 KiB.
const maxOutput = 64 << 10

// tailBuffer is an io.Writer that keeps the last limit bytes written to it.
// It is not safe for concurrent use.
type tailBuffer struct {
	limit   int
	buf     []byte
	dropped int64 // bytes dropped from the front
}

func newTailBuffer(limit int) *tailBuffer { return &tailBuffer{limit: limit} }

// Write never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.limit {
		t.dropped += int64(len(t.buf) + len(p) - t.limit)
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.limit; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
		t.dropped += int64(over)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// Bytes returns what is kept. The slice is valid until the next Write.
func (t *tailBuffer) Bytes() []byte { return t.buf }

// Dropped returns how many bytes were written but are no longer kept.
func (t *tailBuffer) Dropped() int64 { return t.dropped }

// maxLine caps the length of one line of a watch command's output.
const maxLine = 64 << 10

// lineWriter is an io.Writer that hands fn each line written to it, without
// its newline. A line longer than limit is handed over once, cut to its first
// limit bytes, with cut set; the rest of it is dropped. The slice passed to fn
// is only valid during the call. It is not safe for concurrent use.
type lineWriter struct {
	limit int
	fn    func(line []byte, cut bool)
	buf   []byte
	skip  bool // dropping the rest of an overlong line
}

func newLineWriter(limit int, fn func(line []byte, cut bool)) *lineWriter {
	return &lineWriter{limit: limit, fn: fn}
}

// Write never fails.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if !w.skip {
			if room := w.limit - len(w.buf); len(part) > room {
				w.buf = append(w.buf, part[:room]...)
				w.fn(w.buf, true)
				w.buf, w.skip = w.buf[:0], true
			} else {
				w.buf = append(w.buf, part...)
			}
		}
		if i < 0 {
			break
		}
		if !w.skip {
			w.fn(w.buf, false)
		}
		w.buf, w.skip = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// Flush hands over a last line that had no newline.
func (w *lineWriter) Flush() {
	if !w.skip && len(w.buf) > 0 {
		w.fn(w.buf, false)
	}
	w.buf, w.skip = w.buf[:0], false
}
