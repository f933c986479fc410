package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Ports every host's agent listens on, at its own address.
const (
	gossipPort  = "7946"
	clusterPort = "7947"
)

// stopWait bounds how long a stopped agent may take to exit: it finishes
// its running resources and leaves the cluster (which gives up after 10 s).
const stopWait = 60 * time.Second

// cliWait bounds one CLI command.
const cliWait = 60 * time.Second

// Host is one machine of a test cluster: a network namespace on the
// test's bridge, a directory (its data dir, its log, its graph files)
// and, while it runs, a graft agent.
type Host struct {
	c     *Cluster
	Name  string
	iface iface
	// Addr is the host's current IP address.
	Addr string
	// Dir holds the host's files; Data, below it, is its data dir.
	Dir, Data string
	// Token is the cluster key its agent is given (GRAFT_TOKEN), "" for
	// none.
	Token string
	// Args are the flags of `graft run` after the hostname, data dir and
	// addresses (--join...); Graph is what it runs: `yaml FILE`, or
	// `empty` when nil.
	Args, Graph []string

	proc   *proc
	starts int
}

// proc is a running agent.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // cmd.Wait's, once done is closed
	started time.Time
}

// GossipAddr is the address others --join.
func (h *Host) GossipAddr() string { return h.Addr + ":" + gossipPort }

// logPath is the file the host's agent writes its output to.
func (h *Host) logPath() string { return filepath.Join(h.Dir, "log") }

// Running reports whether the host's agent was started and has not
// exited.
func (h *Host) Running() bool {
	if h.proc == nil {
		return false
	}
	select {
	case <-h.proc.done:
		return false
	default:
		return true
	}
}

// Start starts the host's agent in its namespace. The agent's output is
// appended to the host's log, after a line saying which start it is.
func (h *Host) Start() {
	t := h.c.t
	t.Helper()
	if h.Running() {
		t.Fatalf("%s: started while its agent runs", h.Name)
	}
	h.starts++
	args := []string{"netns", "exec", h.iface.ns, h.c.s.bin, "run",
		"--hostname", h.Name, "--data-dir", h.Data,
		"--cluster-addr", h.Addr + ":" + clusterPort, "--gossip-addr", h.GossipAddr()}
	args = append(args, h.Args...)
	if h.Graph == nil {
		args = append(args, "empty")
	}
	args = append(args, h.Graph...)
	log, err := os.OpenFile(h.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	fmt.Fprintf(log, "===== %s: start %d at %s: ip %s\n", h.Name, h.starts,
		time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command("ip", args...)
	cmd.Env = h.env()
	cmd.Dir = h.Dir
	cmd.Stdout, cmd.Stderr = log, log
	// Should the test binary die, so do its agents.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: starting graft: %v", h.Name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), started: time.Now()}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.proc = p
}

// env is the agent's environment: the test's, less graft's own
// variables, plus the cluster key and a text log (which the tests read;
// the default for a log that is not a terminal is JSON).
func (h *Host) env() []string {
	env := []string{"GRAFT_LOG_FORMAT=text"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRAFT_") {
			env = append(env, kv)
		}
	}
	if h.Token != "" {
		env = append(env, "GRAFT_TOKEN="+h.Token)
	}
	return env
}

// signal sends sig to the host's agent.
func (h *Host) signal(sig syscall.Signal) {
	t := h.c.t
	t.Helper()
	if !h.Running() {
		t.Fatalf("%s: signal %v: its agent is not running", h.Name, sig)
	}
	if err := h.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", h.Name, sig, err)
	}
}

// wait waits up to within for the agent to exit and returns how it
// exited; it fails t if the agent is still running then.
func (h *Host) wait(within time.Duration) error {
	t := h.c.t
	t.Helper()
	select {
	case <-h.proc.done:
		return h.proc.err
	case <-time.After(within):
		t.Fatalf("%s: its agent did not exit within %v", h.Name, within)
		return nil
	}
}

// Stop sends the agent SIGTERM (it finishes its running resources and
// leaves the cluster) and waits for it to exit, failing t unless it exits
// 0 within stopWait.
func (h *Host) Stop() {
	t := h.c.t
	t.Helper()
	h.signal(syscall.SIGTERM)
	if err := h.wait(stopWait); err != nil {
		t.Fatalf("%s: stopped with SIGTERM, the agent exited: %v", h.Name, err)
	}
}

// Kill sends the agent SIGKILL, as a crash or a power loss would, and
// waits for it to be gone.
func (h *Host) Kill() {
	t := h.c.t
	t.Helper()
	h.signal(syscall.SIGKILL)
	_ = h.wait(stopWait)
}

// Pause freezes the agent (SIGSTOP); Resume thaws it (SIGCONT).
func (h *Host) Pause()  { h.c.t.Helper(); h.signal(syscall.SIGSTOP) }
func (h *Host) Resume() { h.c.t.Helper(); h.signal(syscall.SIGCONT) }

// Restart stops the agent with SIGTERM and starts it again on the same
// data dir.
func (h *Host) Restart() {
	h.c.t.Helper()
	h.Stop()
	h.Start()
}

// Readdress moves the host to address addr. Its agent, bound to the old
// one, keeps running there until it is restarted (it cannot be reached
// meanwhile).
func (h *Host) Readdress(addr string) {
	t := h.c.t
	t.Helper()
	if err := h.iface.readdress(addr); err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	h.Addr = addr
}

// teardown kills the agent if it runs, and waits for it.
func (h *Host) teardown() {
	if h.proc == nil {
		return
	}
	_ = h.proc.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-h.proc.done:
	case <-time.After(stopWait):
		h.c.t.Errorf("%s: its agent survived SIGKILL for %v", h.Name, stopWait)
	}
}

// cliError is a CLI command that exited non-zero.
type cliError struct {
	args   []string
	code   int
	stderr string
}

func (e *cliError) Error() string {
	return fmt.Sprintf("graft %s: exit %d: %s", strings.Join(e.args, " "), e.code, strings.TrimSpace(e.stderr))
}

// Graft runs a graft command against the host's agent, through the API
// socket in its data dir (GRAFT_DATA_DIR), and returns its stdout. A
// command that exits non-zero returns a *cliError with its stderr.
func (h *Host) Graft(args ...string) (string, error) {
	return h.GraftIn(nil, args...)
}

// GraftIn is Graft with stdin.
func (h *Host) GraftIn(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.c.s.bin, args...)
	cmd.Env = append(h.env(), "GRAFT_DATA_DIR="+h.Data)
	cmd.Dir = h.Dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return stdout.String(), &cliError{args: args, code: ee.ExitCode(), stderr: stderr.String()}
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("graft %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// Log returns what the host's agents wrote so far, every start's.
func (h *Host) Log() string {
	b, _ := os.ReadFile(h.logPath())
	return string(b)
}
