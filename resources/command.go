package resources

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/shlex"
)

// defaultKillGrace is how long a cancelled command's process group has
// between SIGTERM and SIGKILL, and how long wait waits for output pipes
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

	// runs, if set, records the run, so that an agent restarted after
	// being killed kills what this run left before running owner's
	// commands again. owner names the resource.
	runs  *execRuns
	owner string
	// log is where problems with the record go; nil discards them.
	log *slog.Logger
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

// output is what a finished command left behind.
type output struct {
	stdout, stderr *tailBuffer
	// combined is stdout and stderr interleaved as they were written.
	combined *tailBuffer
	// code is the exit code, -1 if a signal ended the command.
	code int
	// state is how it ended, as "exit status 3".
	state string
	// err is what wait returned.
	err error
}

// run runs the command to completion and keeps the tail of its output. An
// error means it could not start; how it ended is in the output.
func (c command) run(ctx context.Context) (output, error) {
	out := output{stdout: newTailBuffer(maxOutput), stderr: newTailBuffer(maxOutput),
		combined: newTailBuffer(maxOutput)}
	// The two streams are copied on goroutines of their own; the combined
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
