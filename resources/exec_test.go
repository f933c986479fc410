package resources

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
)

// execProbe records what an Exec told its fake runtime.
type execProbe struct {
	running atomic.Int64
	events  atomic.Int64
	early   atomic.Bool   // an Event arrived before Running
	eventc  chan struct{} // one value per Event, never blocks the sender
	logs    *execLogs
	sentMu  sync.Mutex
	sent    map[string]any // the last values sent
}

func (p *execProbe) lastSent() map[string]any {
	p.sentMu.Lock()
	defer p.sentMu.Unlock()
	return p.sent
}

func (p *execProbe) waitEvents(t *testing.T, n int64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for p.events.Load() < n {
		select {
		case <-p.eventc:
		case <-timeout:
			t.Fatalf("got %d events, want %d", p.events.Load(), n)
		}
	}
}

// execLogs is a slog handler that keeps the attributes of the last record
// logged with each message.
type execLogs struct {
	mu   sync.Mutex
	last map[string]map[string]slog.Value
}

func (h *execLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *execLogs) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *execLogs) WithGroup(string) slog.Handler            { return h }

func (h *execLogs) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last[r.Message] = attrs
	return nil
}

// attr returns the value of key in the last record with message msg.
func (h *execLogs) attr(t *testing.T, msg, key string) slog.Value {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.last[msg][key]
	if !ok {
		t.Fatalf("no log record %q with attribute %q", msg, key)
	}
	return v
}

// newTestExec validates e and initialises it with a fake runtime.
func newTestExec(t *testing.T, e *Exec) (*Exec, *execProbe) {
	t.Helper()
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	p := &execProbe{eventc: make(chan struct{}, 1), logs: &execLogs{last: map[string]map[string]slog.Value{}}}
	rt := &engine.Runtime{
		ID:       engine.ID{Kind: "exec", Name: e.name},
		Hostname: "test",
		Logger:   slog.New(p.logs),
		Running:  func() { p.running.Add(1) },
		Event: func() {
			if p.running.Load() == 0 {
				p.early.Store(true)
			}
			p.events.Add(1)
			select {
			case p.eventc <- struct{}{}:
			default:
			}
		},
		Refresh: func() bool { return false },
		Send: func(vals map[string]any) error {
			p.sentMu.Lock()
			defer p.sentMu.Unlock()
			p.sent = vals
			return nil
		},
		Recv: func() map[string]bool { return nil },
	}
	if err := e.Init(rt); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return e, p
}

// execCheckApply runs CheckApply and fails the test on an error.
func execCheckApply(t *testing.T, e *Exec, apply bool) bool {
	t.Helper()
	ok, err := e.CheckApply(t.Context(), apply)
	if err != nil {
		t.Fatalf("CheckApply(%v): %v", apply, err)
	}
	return ok
}

// execStdout runs e's cmd and returns what it wrote to stdout.
func execStdout(t *testing.T, e *Exec) string {
	t.Helper()
	e, p := newTestExec(t, e)
	if ok := execCheckApply(t, e, true); ok {
		t.Fatalf("CheckApply = true, want false")
	}
	return p.logs.attr(t, "cmd ran", "stdout").String()
}

func execExists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestExecRunsOnlyWithApply(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "marker")
	e, p := newTestExec(t, &Exec{name: "x", Cmd: "touch " + marker})
	if ok := execCheckApply(t, e, false); ok || execExists(t, marker) {
		t.Fatalf("apply=false: CheckApply = %v, cmd ran = %v; want false, false", ok, execExists(t, marker))
	}
	if ok := execCheckApply(t, e, true); ok {
		t.Errorf("CheckApply = true, want false")
	}
	if !execExists(t, marker) {
		t.Errorf("cmd did not run: %s missing", marker)
	}
	if got := p.logs.attr(t, "cmd ran", "exit_code").Int64(); got != 0 {
		t.Errorf("logged exit_code = %d, want 0", got)
	}

	// It runs again on every call: a refresh needs nothing special.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	execCheckApply(t, e, true)
	if !execExists(t, marker) {
		t.Errorf("cmd did not run a second time")
	}
}

func TestExecIfCmd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		e      Exec
		wantOK bool // ifcmd failed, so cmd did not run
	}{
		{"false", Exec{IfCmd: "false"}, true},
		{"true", Exec{IfCmd: "true"}, false},
		{"exit 7", Exec{IfCmd: "sh -c 'exit 7'"}, true},
		{"shell in cwd", Exec{IfCmd: `test "$(pwd -P)" = /`, IfShell: "/bin/sh", IfCwd: "/"}, false},
		{"shell elsewhere", Exec{IfCmd: `test "$(pwd -P)" = /`, IfShell: "/bin/sh", IfCwd: "/tmp"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "marker")
			tc.e.name, tc.e.Cmd = "x", "touch "+marker
			e, _ := newTestExec(t, &tc.e)
			if got := execCheckApply(t, e, true); got != tc.wantOK {
				t.Errorf("CheckApply = %v, want %v", got, tc.wantOK)
			}
			if got, want := execExists(t, marker), !tc.wantOK; got != want {
				t.Errorf("cmd ran = %v, want %v", got, want)
			}
		})
	}
}

func TestExecCreates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	creates := filepath.Join(dir, "created")
	e, _ := newTestExec(t, &Exec{name: "x", Cmd: "touch " + marker + " " + creates, Creates: creates})

	if ok := execCheckApply(t, e, true); ok {
		t.Fatalf("creates missing: CheckApply = true, want false")
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	if ok := execCheckApply(t, e, true); !ok {
		t.Errorf("creates present: CheckApply = false, want true")
	}
	if execExists(t, marker) {
		t.Errorf("cmd ran although creates exists")
	}

	// A dangling symlink exists too: creates does not follow it.
	if err := os.Remove(creates); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), creates); err != nil {
		t.Fatal(err)
	}
	if ok := execCheckApply(t, e, true); !ok {
		t.Errorf("creates is a dangling symlink: CheckApply = false, want true")
	}
}

func TestExecFailure(t *testing.T) {
	t.Parallel()
	e, p := newTestExec(t, &Exec{name: "x", Shell: "/bin/sh", Cmd: "echo out; echo oops >&2; exit 3"})
	_, err := e.CheckApply(t.Context(), true)
	if err == nil {
		t.Fatal("CheckApply succeeded, want an error")
	}
	var exitErr *exitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("error %v does not wrap an exit with code 3", err)
	}
	for _, want := range []string{"exit status 3", "oops"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got, want := p.logs.attr(t, "cmd ran", "stdout").String(), "out\n"; got != want {
		t.Errorf("logged stdout = %q, want %q", got, want)
	}
	if got, want := p.logs.attr(t, "cmd ran", "exit_code").Int64(), int64(3); got != want {
		t.Errorf("logged exit_code = %d, want %d", got, want)
	}
}

func TestExecCannotStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		e          Exec
		op         func(e *Exec, ctx context.Context) error
	}{
		{"cmd", "cmd: start:", Exec{Cmd: "/nonexistent/cmd"}, execApply},
		{"cwd", `cmd: start: chdir /nonexistent: no such file or directory`, Exec{Cmd: "true", Cwd: "/nonexistent"}, execApply},
		{"ifcmd", "ifcmd: start:", Exec{Cmd: "true", IfCmd: "/nonexistent/ifcmd"}, execApply},
		{"watchcmd", "watchcmd: start:", Exec{Cmd: "true", WatchCmd: "/nonexistent/watch"}, (*Exec).Watch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, p := newTestExec(t, &tc.e)
			err := tc.op(e, t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
			if got := p.running.Load(); got != 0 {
				t.Errorf("Running called %d times, want 0", got)
			}
		})
	}
}

func execApply(e *Exec, ctx context.Context) error {
	_, err := e.CheckApply(ctx, true)
	return err
}

func TestExecEnvInherits(t *testing.T) {
	t.Setenv("GRAFT_EXEC_TEST", "inherited")
	got := execStdout(t, &Exec{name: "x", Cmd: "env"})
	if !strings.Contains(got, "\nGRAFT_EXEC_TEST=inherited\n") && !strings.HasPrefix(got, "GRAFT_EXEC_TEST=inherited\n") {
		t.Errorf("env printed %q, want it to hold GRAFT_EXEC_TEST=inherited", got)
	}
}

func TestExecArgv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    Exec
		want string
	}{
		{"args", Exec{Cmd: "printf", Args: []string{"%s|", "a b", "c"}}, "a b|c|"},
		{"shlex", Exec{Cmd: `printf '%s|' "a b" c`}, "a b|c|"},
		{"no expansion", Exec{Cmd: `printf '%s|' $HOME *`}, "$HOME|*|"},
		{"shell", Exec{Shell: "/bin/sh", Cmd: `printf '%s|' "$((1+2))" c`}, "3|c|"},
		{"defaults to name", Exec{}, "named\n"},
		{"env replaces", Exec{Cmd: "env", Env: map[string]string{"FOO": "bar", "A": "x=y z"}}, "A=x=y z\nFOO=bar\n"},
		{"cwd", Exec{Cmd: "pwd -P", Cwd: "/"}, "/\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := tc.e
			e.name = "echo named"
			if got := execStdout(t, &e); got != tc.want {
				t.Errorf("stdout = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExecOutputIsBounded(t *testing.T) {
	t.Parallel()
	const n = 200_000
	e, p := newTestExec(t, &Exec{name: "x", Shell: "/bin/sh", Cmd: "head -c " + strconv.Itoa(n) + " /dev/zero | tr '\\0' x"})
	execCheckApply(t, e, true)
	if got := len(p.logs.attr(t, "cmd ran", "stdout").String()); got != maxOutput {
		t.Errorf("logged %d bytes of stdout, want %d", got, maxOutput)
	}
	if got, want := p.logs.attr(t, "cmd ran", "stdout_dropped").Int64(), int64(n-maxOutput); got != want {
		t.Errorf("stdout_dropped = %d, want %d", got, want)
	}
}

func TestExecValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    Exec
		want string // substrings of the error, separated by "&"; empty means valid
	}{
		{"minimal", Exec{name: "true"}, ""},
		{"full", Exec{
			Cmd: "echo hi", Cwd: "/", Env: map[string]string{"A": ""},
			WatchCmd: "sleep 1", WatchCwd: "/", WatchShell: "/bin/sh",
			IfCmd: "true", IfCwd: "/", IfShell: "/bin/sh", Creates: "/nonexistent",
		}, ""},
		{"args", Exec{Cmd: "/bin/echo", Args: []string{"a b"}}, ""},
		{"empty cmd and name", Exec{}, "cmd: must not be empty"},
		{"blank cmd", Exec{Cmd: "  "}, "cmd: must not be empty"},
		{"args with shell", Exec{Cmd: "echo", Args: []string{"a"}, Shell: "/bin/sh"}, "args: cannot be used with shell"},
		{"args with two-word cmd", Exec{Cmd: "echo hi", Args: []string{"a"}}, "cmd: must be one word"},
		{"unterminated quote", Exec{Cmd: `echo "hi`}, "cmd:"},
		{"only a comment", Exec{Cmd: "# nothing"}, "cmd:"},
		{"watchcmd quote", Exec{Cmd: "true", WatchCmd: `echo 'hi`}, "watchcmd:"},
		{"ifcmd quote", Exec{Cmd: "true", IfCmd: `echo 'hi`}, "ifcmd:"},
		{"relative cwds, as mgmt", Exec{Cmd: "true", Cwd: "tmp", WatchCwd: "tmp", IfCwd: "tmp"}, ""},
		{"args after a padded cmd, as mgmt", Exec{Cmd: " /bin/echo ", Args: []string{"a"}}, ""},
		{"relative creates", Exec{Cmd: "true", Creates: "tmp"}, "creates: must be an absolute path"},
		{"empty env key", Exec{Cmd: "true", Env: map[string]string{"": "x"}}, "env: variable name must not be empty"},
		{"env key with =", Exec{Cmd: "true", Env: map[string]string{"A=B": "x"}}, "env: variable name must not contain '='"},
		{"every problem", Exec{Cmd: "true", Env: map[string]string{"": "a"}, Creates: "b"}, "env:&creates:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.e.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			for _, want := range strings.Split(tc.want, "&") {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate = %v, want an error containing %q", err, want)
				}
			}
		})
	}
}

func TestExecLegacyKeys(t *testing.T) {
	t.Parallel()
	keys := (&Exec{}).LegacyKeys()
	for _, k := range []string{"state", "timeout", "pollint"} {
		if keys[k] == "" {
			t.Errorf("LegacyKeys()[%q] is empty, want a reason", k)
		}
	}
	if len(keys) != 3 {
		t.Errorf("LegacyKeys() has %d keys, want 3", len(keys))
	}
}

func TestExecWatchWithoutWatchCmd(t *testing.T) {
	t.Parallel()
	e, p := newTestExec(t, &Exec{name: "x", Cmd: "true"})
	if err := e.Watch(t.Context()); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if got := p.running.Load(); got != 1 {
		t.Errorf("Running called %d times, want 1", got)
	}
}

func TestExecWatchEventPerLine(t *testing.T) {
	t.Parallel()
	e, p := newTestExec(t, &Exec{
		name: "x", Cmd: "true",
		WatchShell: "/bin/sh", WatchCmd: `echo warning >&2; printf 'a\n\n  \nb\n'; exec sleep 100`,
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	p.waitEvents(t, 2)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
	if got := p.events.Load(); got != 2 {
		t.Errorf("got %d events, want 2", got)
	}
	if got := p.running.Load(); got != 1 {
		t.Errorf("Running called %d times, want 1", got)
	}
	if p.early.Load() {
		t.Errorf("Event called before Running")
	}
	if got := p.logs.attr(t, "watchcmd wrote to stderr", "line").String(); got != "warning" {
		t.Errorf("logged stderr line %q, want %q", got, "warning")
	}
}

func TestExecWatchCmdExits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cmd, want string
		events          int64
	}{
		{"non-zero", `printf 'a\n\nb\n'; exit 3`, "exit status 3", 2},
		{"zero", `printf 'a\n'`, "exit status 0", 1},
		{"no newline at end", `printf 'a\nb'; exit 1`, "exit status 1", 2},
		{"overlong line", `head -c 200000 /dev/zero | tr '\0' x; printf '\ny\n'; exit 1`, "exit status 1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, p := newTestExec(t, &Exec{name: "x", Cmd: "true", WatchShell: "/bin/sh", WatchCmd: tc.cmd})
			err := e.Watch(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Watch = %v, want an error containing %q", err, tc.want)
			}
			if got := p.events.Load(); got != tc.events {
				t.Errorf("got %d events, want %d", got, tc.events)
			}
		})
	}
}

// exec sends its stdout, stderr and both interleaved after its command ran.
func TestExecSendsOutput(t *testing.T) {
	e, p := newTestExec(t, &Exec{Cmd: "echo out; echo err >&2; echo out2", Shell: "/bin/sh"})
	execCheckApply(t, e, true)
	got := p.lastSent()
	want := map[string]any{"stdout": "out\nout2\n", "stderr": "err\n"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("sent %s = %q, want %q", k, got[k], v)
		}
	}
	// The two streams reach graft through two pipes, so only each stream's
	// own order is kept in output.
	out, _ := got["output"].(string)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	if !slices.Equal(lines, []string{"err", "out", "out2"}) || strings.Index(out, "out\n") > strings.Index(out, "out2") {
		t.Errorf("sent output = %q, want out, out2 and err", out)
	}
	for k, v := range e.Sends() {
		if _, ok := v.(string); !ok || got[k] == nil {
			t.Errorf("declared send %q (%T) not sent as a string", k, v)
		}
	}
}
