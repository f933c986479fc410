package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graftcm/graft/engine"
)

// Exec runs a command, the way mgmt's exec resource does.
//
// Exec has no state of its own to converge: CheckApply runs Cmd whenever the
// engine calls it (on the first run, on an event from WatchCmd, or on a
// refresh), unless IfCmd exits non-zero or Creates exists.
//
// Every command runs in a process group of its own under a guard that kills
// the group when the agent dies (see guard.go), and, in an agent, is
// recorded so that a restart kills what a crash left (see execRuns).
type Exec struct {
	// Cmd is the command to run; empty means the resource's name. Without
	// Shell or Args it is split into words with shell-like quoting, but no
	// variable, glob or other expansion.
	Cmd string `yaml:"cmd"`
	// Args are Cmd's arguments. With Args, Cmd must be a single word (the
	// program, used verbatim but for surrounding spaces) and Shell must be
	// empty.
	Args []string `yaml:"args"`
	// Cwd is the working directory; empty means the agent's. A relative
	// one is taken from the agent's working directory, as mgmt does.
	Cwd string `yaml:"cwd"`
	// Shell, if set, runs Cmd as: Shell -c Cmd.
	Shell string `yaml:"shell"`
	// Env is the exact environment of all three commands. Empty inherits the
	// agent's environment; otherwise nothing else is passed on (not even
	// PATH, although a program named without a slash is still looked up in
	// the agent's PATH) but GRAFT_EXEC_RUN, by which a restarted agent
	// recognises what its killed predecessor left running, and, for cmd
	// and ifcmd, GRAFT_FENCE_<ID>: the fencing token of each cluster
	// semaphore (meta sema "@@id") the run holds (see fenceEnvName).
	Env map[string]string `yaml:"env"`

	// WatchCmd, if set, runs for as long as the resource is watched; every
	// non-blank line it writes to stdout is an event. It must not exit.
	WatchCmd string `yaml:"watchcmd"`
	// WatchCwd is WatchCmd's working directory, as Cwd.
	WatchCwd string `yaml:"watchcwd"`
	// WatchShell is WatchCmd's shell, as Shell.
	WatchShell string `yaml:"watchshell"`

	// IfCmd, if set, runs before Cmd: if it exits non-zero, Cmd does not run
	// and the resource counts as in state.
	IfCmd string `yaml:"ifcmd"`
	// IfCwd is IfCmd's working directory, as Cwd.
	IfCwd string `yaml:"ifcwd"`
	// IfShell is IfCmd's shell, as Shell.
	IfShell string `yaml:"ifshell"`

	// Creates, if set, is an absolute path: if something exists there
	// (symlinks are not followed), Cmd does not run.
	Creates string `yaml:"creates"`

	name  string
	rt    *engine.Runtime
	grace time.Duration // SIGTERM to SIGKILL; zero means defaultKillGrace
	runs  *execRuns     // where runs are recorded; nil records nothing
}

// Sends declares what exec sends over send/recv edges after its command
// ran: its stdout, its stderr, and both interleaved as output (the last
// 64 KiB of each).
func (e *Exec) Sends() map[string]any {
	return map[string]any{"stdout": "", "stderr": "", "output": ""}
}

// LegacyKeys returns the keys old mgmt graphs carry for exec that graft
// accepts and ignores, each with the reason.
func (e *Exec) LegacyKeys() map[string]string {
	return map[string]string{
		"state":   "exec has no state; it runs when an event, ifcmd or creates says so",
		"timeout": "use meta timeout",
		"pollint": "use meta poll",
	}
}

// cmdLine is Cmd, defaulted to the resource's name.
func (e *Exec) cmdLine() string {
	if e.Cmd == "" {
		return e.name
	}
	return e.Cmd
}

// env is Env as KEY=VALUE pairs, sorted, or nil if Env is empty.
func (e *Exec) env() []string {
	if len(e.Env) == 0 {
		return nil
	}
	env := make([]string, 0, len(e.Env))
	for k, v := range e.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

func (e *Exec) mainCommand() command { return e.command(e.cmdLine(), e.Args, e.Shell, e.Cwd) }

func (e *Exec) watchCommand() command { return e.command(e.WatchCmd, nil, e.WatchShell, e.WatchCwd) }

func (e *Exec) ifCommand() command { return e.command(e.IfCmd, nil, e.IfShell, e.IfCwd) }

func (e *Exec) command(line string, args []string, shell, dir string) command {
	c := command{line: line, args: args, shell: shell, dir: dir, env: e.env(), grace: e.grace, runs: e.runs}
	if e.rt != nil { // Validate runs before Init
		c.owner, c.log = e.rt.ID.String(), e.rt.Logger
	}
	return c
}

// Validate checks the parameters without touching the host. It reports
// every problem it finds.
func (e *Exec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, engine.ParamErrorf(field, format, args...))
	}

	line := e.cmdLine()
	switch {
	case strings.TrimSpace(line) == "":
		bad("cmd", "must not be empty")
	case len(e.Args) > 0 && e.Shell != "":
		bad("args", "cannot be used with shell")
	case len(e.Args) > 0:
		if len(strings.Fields(line)) > 1 {
			bad("cmd", "must be one word when args are given, got %q", line)
		}
	default:
		if _, err := e.mainCommand().argv(); err != nil {
			errs = append(errs, engine.ParamErrorf("cmd", "%w", err))
		}
	}
	for _, c := range []struct {
		field string
		cmd   command
	}{
		{"watchcmd", e.watchCommand()},
		{"ifcmd", e.ifCommand()},
	} {
		if c.cmd.line == "" {
			continue
		}
		if _, err := c.cmd.argv(); err != nil {
			errs = append(errs, engine.ParamErrorf(c.field, "%w", err))
		}
	}
	if e.Creates != "" && !filepath.IsAbs(e.Creates) {
		bad("creates", "must be an absolute path, got %q", e.Creates)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Env)) {
		switch {
		case k == "":
			bad("env", "variable name must not be empty")
		case strings.Contains(k, "="):
			bad("env", "variable name must not contain '=', got %q", k)
		}
	}
	return errors.Join(errs...)
}

// IgnoredParams names the parameters that have no effect as given, each
// with the reason: a shell or working directory for a watch or if command
// that is not there. mgmt accepts them, and so does graft; the graph loader
// warns about each one.
func (e *Exec) IgnoredParams() map[string]string {
	ignored := map[string]string{}
	if e.WatchCmd == "" {
		for key, v := range map[string]string{"watchshell": e.WatchShell, "watchcwd": e.WatchCwd} {
			if v != "" {
				ignored[key] = "there is no watchcmd for it to apply to"
			}
		}
	}
	if e.IfCmd == "" {
		for key, v := range map[string]string{"ifshell": e.IfShell, "ifcwd": e.IfCwd} {
			if v != "" {
				ignored[key] = "there is no ifcmd for it to apply to"
			}
		}
	}
	if len(ignored) == 0 {
		return nil
	}
	return ignored
}

// Init keeps the runtime.
func (e *Exec) Init(rt *engine.Runtime) error {
	e.rt = rt
	return nil
}

// Cleanup has nothing to release.
func (e *Exec) Cleanup() error { return nil }

// Watch runs WatchCmd until ctx is done and turns every non-blank line of
// its stdout into an event; lines on its stderr are logged as warnings.
// Without WatchCmd there is nothing to watch. WatchCmd exiting on its own is
// an error, whatever its exit status.
func (e *Exec) Watch(ctx context.Context) error {
	if e.WatchCmd == "" {
		e.rt.Running()
		return nil
	}
	log := e.rt.Logger
	// Running must come before the first Event, and output can arrive
	// before start returns.
	var once sync.Once
	running := func() { once.Do(e.rt.Running) }
	stdout := newLineWriter(maxLine, func(line []byte, cut bool) {
		if !cut && len(bytes.TrimSpace(line)) == 0 {
			return
		}
		running()
		e.rt.Event()
	})
	stderr := newLineWriter(maxLine, func(line []byte, cut bool) {
		log.Warn("watchcmd wrote to stderr", "line", string(line), "cut", cut)
	})

	p, err := e.watchCommand().start(ctx, stdout, stderr)
	if err != nil {
		return fmt.Errorf("watchcmd: %w", err)
	}
	log.Info("watchcmd started", "watchcmd", e.WatchCmd, "pid", p.pid)
	running()
	err = p.wait()
	// Wait has joined the goroutines that feed the writers.
	stdout.Flush()
	stderr.Flush()

	if ctx.Err() != nil {
		return nil
	}
	var exitErr *exitError
	switch {
	case err == nil || errors.Is(err, errOutputHeld):
		return fmt.Errorf("watchcmd exited: %s", p.state())
	case errors.As(err, &exitErr):
		return fmt.Errorf("watchcmd exited: %w", err)
	default:
		return fmt.Errorf("watchcmd exited: %s: %w", p.state(), err)
	}
}

// CheckApply runs Cmd if apply is set and neither IfCmd nor Creates says
// there is nothing to do. It returns true if there was nothing to do.
func (e *Exec) CheckApply(ctx context.Context, apply bool) (bool, error) {
	log := e.rt.Logger
	if e.IfCmd != "" {
		run, err := e.checkIf(ctx)
		if err != nil {
			return false, err
		}
		if !run {
			return true, nil
		}
	}
	if e.Creates != "" {
		_, err := os.Lstat(e.Creates)
		switch {
		case err == nil:
			log.Debug("creates exists; not running cmd", "path", e.Creates)
			return true, nil
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		default:
			return false, fmt.Errorf("creates: %w", err)
		}
	}
	if !apply {
		log.Info("would run cmd", "cmd", e.cmdLine(), "reason", e.reason())
		return false, nil
	}
	return false, e.runCmd(ctx)
}

// reason says why CheckApply would run the command, for a noop's log.
func (e *Exec) reason() string {
	var why []string
	if e.rt.Refresh() {
		why = append(why, "a notify edge delivered a refresh")
	}
	if e.IfCmd != "" {
		why = append(why, "ifcmd exited 0")
	}
	if e.Creates != "" {
		why = append(why, e.Creates+" does not exist")
	}
	if e.IfCmd == "" && e.Creates == "" {
		why = append(why, "no ifcmd or creates guards it")
	}
	return strings.Join(why, "; ")
}

// checkIf runs IfCmd and reports whether Cmd should run: it should if IfCmd
// exits zero.
func (e *Exec) checkIf(ctx context.Context) (bool, error) {
	out, err := e.fenced(e.ifCommand()).run(ctx)
	if err != nil {
		return false, fmt.Errorf("ifcmd: %w", err)
	}
	attrs := outputAttrs(out)
	var exitErr *exitError
	switch {
	case out.err == nil || errors.Is(out.err, errOutputHeld):
		e.rt.Logger.Debug("ifcmd succeeded; running cmd", attrs...)
		return true, nil
	case ctx.Err() != nil:
		return false, fmt.Errorf("ifcmd: interrupted: %w", errors.Join(context.Cause(ctx), out.err))
	case errors.As(out.err, &exitErr):
		e.rt.Logger.Debug("ifcmd failed; not running cmd", attrs...)
		return false, nil
	default:
		return false, fmt.Errorf("ifcmd: %w", out.err)
	}
}

// runCmd runs Cmd, logs its output and fails if it does not exit zero.
func (e *Exec) runCmd(ctx context.Context) error {
	attrs := []any{"cmd", e.cmdLine()}
	if len(e.Args) > 0 {
		attrs = append(attrs, "args", e.Args)
	}
	if e.Shell != "" {
		attrs = append(attrs, "shell", e.Shell)
	}
	e.rt.Logger.Info("running cmd", attrs...)
	out, err := e.fenced(e.mainCommand()).run(ctx)
	if err != nil {
		return fmt.Errorf("cmd: %w", err)
	}
	e.rt.Logger.Info("cmd ran", outputAttrs(out)...)
	if err := e.rt.Send(map[string]any{
		"stdout": string(out.stdout.Bytes()),
		"stderr": string(out.stderr.Bytes()),
		"output": string(out.combined.Bytes()),
	}); err != nil {
		return err
	}
	var exitErr *exitError
	switch {
	case out.err == nil:
		return nil
	case errors.Is(out.err, errOutputHeld):
		// It exited zero but left processes holding its output open past
		// the grace. Those in its process group were killed; any that
		// left it (setsid) run on, and their output is no longer read.
		e.rt.Logger.Warn("cmd exited but processes it started kept its output open; " +
			"killed those still in its process group and stopped reading the output")
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("cmd: interrupted: %w", errors.Join(context.Cause(ctx), out.err))
	case errors.As(out.err, &exitErr):
		if tail := stderrTail(out.stderr.Bytes()); tail != "" {
			return fmt.Errorf("cmd: %w: stderr: %q", out.err, tail)
		}
		return fmt.Errorf("cmd: %w", out.err)
	default:
		return fmt.Errorf("cmd: %w", out.err)
	}
}

// maxErrStderr is how much of the end of stderr an error message quotes.
const maxErrStderr = 1 << 10

// stderrTail returns the end of stderr for an error message, trimmed.
func stderrTail(stderr []byte) string {
	s := strings.TrimSpace(string(stderr))
	if len(s) <= maxErrStderr {
		return s
	}
	return "..." + s[len(s)-maxErrStderr:]
}

// outputAttrs describes how a command ended and what it wrote, for logging.
func outputAttrs(out output) []any {
	attrs := []any{
		slog.Int("exit_code", out.code),
		slog.String("status", out.state),
		slog.String("stdout", string(out.stdout.Bytes())),
		slog.String("stderr", string(out.stderr.Bytes())),
	}
	if n := out.stdout.Dropped(); n > 0 {
		attrs = append(attrs, slog.Int64("stdout_dropped", n))
	}
	if n := out.stderr.Dropped(); n > 0 {
		attrs = append(attrs, slog.Int64("stderr_dropped", n))
	}
	return attrs
}

// Requires names the working directory and the creates path: file
// resources that manage them are applied first.
func (e *Exec) Requires() []string {
	var req []string
	for _, p := range []string{e.Cwd, e.Creates} {
		if filepath.IsAbs(p) {
			self, _ := engine.PathUIDs(p)
			req = append(req, self)
		}
	}
	return req
}
