package resources

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

// The exec guard: how a command dies with the agent.
//
// graft never starts a command itself. It starts a guard: a second copy of
// its own binary (/proc/self/exe, which names the running binary even if the
// file was replaced since) with guardArg0 as its argv[0] and guardEnv set,
// which this package's init turns into the guard. By then the Go runtime
// has started and the init functions of the packages this one imports have
// run, and until the guard has started the command its stdout and stderr
// are the command's: whatever it writes there lands in the command's
// output. So that GODEBUG (whose inittrace, gctrace and other settings
// write to stderr) acts on the command only, the agent hands it to the
// guard as guardGodebugEnv, which the guard turns back into GODEBUG for the
// command. Other GO* variables reach the guard too, but write nothing
// unless the guard crashes.
//
// The guard leads a new process group; the command it starts, and whatever
// that command starts, stay in that group unless they leave it on purpose
// (setsid, setpgid).
//
// The guard holds the read end of a pipe, the lifeline, whose write end only
// the agent holds. However the agent ends, SIGKILL included, the kernel
// closes the write end, the guard reads end-of-file and kills its whole
// group, itself included. Nothing depends on which of the agent's threads
// started the guard, unlike a parent-death signal (PR_SET_PDEATHSIG), which
// fires when the forking thread exits and which would in any case reach only
// the direct child, not the processes a shell starts.
//
// The guard is only ever a group leader that is alive or an unreaped child
// of the agent while the agent signals its group, so the group's ID cannot
// have been reused by then: the agent reaps the guard last.
//
// Protocol, on the guard's side:
//   - argv: guardArg0, the working directory ("" for the agent's), the
//     program's path, then the command's argv.
//   - fd 3, the lifeline: one byte from the agent is the go-ahead (the agent
//     has recorded the run); end-of-file, at any time, means kill the group.
//   - fd 4, the status pipe: 'S' and the command's pid (4 bytes) once it
//     started, or 'E', an errno (4 bytes, 0 if none) and a message if it
//     could not; then, once the command exited, its wait status (4 bytes).
//
// All integers are little-endian.
const (
	guardArg0 = "graft-exec-guard"
	guardEnv  = "GRAFT_EXEC_GUARD"
	// runEnv carries a run's token into the command's environment, which
	// its processes inherit: a restarted agent recognises what an earlier
	// run left by it.
	runEnv = "GRAFT_EXEC_RUN"
	// guardGodebugEnv carries the command's GODEBUG past the guard's own
	// Go runtime.
	guardGodebugEnv = "GRAFT_EXEC_GODEBUG"

	guardLifelineFD = 3
	guardStatusFD   = 4

	guardStarted = 'S'
	guardFailed  = 'E'
)

// init turns this process into an exec guard if it was started as one. Only
// a process started with both the guard's argv[0] and environment is: an
// agent that merely inherited guardEnv is not.
//
// This is an init on purpose, the one exception to "no init()
// registration": every binary that links this package, each test binary
// included, starts its guards from its own file, so every one of them must
// become a guard when started as one. An explicit hook that main or
// TestMain had to call could be forgotten, and a test binary that forgot it
// would run its whole test suite again as the "guard" of every command.
func init() {
	if len(os.Args) < 4 || os.Args[0] != guardArg0 || os.Getenv(guardEnv) != "1" {
		return
	}
	os.Exit(guard(os.Args[1], os.Args[2], os.Args[3:]))
}

// guard runs the command path with argv in directory dir and reports on it
// as the protocol above says. It returns only if the command never started;
// otherwise it ends by killing its own process group.
func guard(dir, path string, argv []string) int {
	// Neither pipe may reach the command: the lifeline must close when
	// the agent dies, whatever the command holds open.
	syscall.CloseOnExec(guardLifelineFD)
	syscall.CloseOnExec(guardStatusFD)
	lifeline := os.NewFile(guardLifelineFD, "lifeline")
	status := os.NewFile(guardStatusFD, "status")

	// Signals sent to the group are meant for the command: the guard
	// outlives it to report how it ended. Caught signals, unlike ignored
	// ones, are reset to their default in the command.
	signal.Notify(make(chan os.Signal, 1))

	var goAhead [1]byte
	if _, err := io.ReadFull(lifeline, goAhead[:]); err != nil {
		return 1 // the agent died or gave up before the command started
	}
	os.Unsetenv(guardEnv)
	failed := func(err error) int {
		var errno syscall.Errno
		errors.As(err, &errno)
		msg := binary.LittleEndian.AppendUint32([]byte{guardFailed}, uint32(errno))
		_, _ = status.Write(append(msg, err.Error()...))
		return 127
	}
	// The guard changes directory itself, rather than being started in
	// dir, so that a bad directory is reported as such ("chdir /x: no
	// such file or directory"), not as the guard's own start failing.
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			return failed(err)
		}
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Env: commandEnv(os.Environ()),
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := cmd.Start(); err != nil {
		return failed(err)
	}
	_, _ = status.Write(binary.LittleEndian.AppendUint32([]byte{guardStarted}, uint32(cmd.Process.Pid)))
	// The output is the command's: the agent waits for it to close.
	if null, err := os.Open(os.DevNull); err == nil {
		_ = syscall.Dup3(int(null.Fd()), 1, 0)
		_ = syscall.Dup3(int(null.Fd()), 2, 0)
		null.Close()
	} else {
		syscall.Close(1)
		syscall.Close(2)
	}

	// The command's end is reported as soon as it comes; the group lives
	// on until the agent has its output (or is gone).
	go func() {
		_ = cmd.Wait() // how the command ended is in ProcessState
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		_, _ = status.Write(binary.LittleEndian.AppendUint32(nil, uint32(ws)))
		status.Close()
	}()
	_, _ = io.Copy(io.Discard, lifeline)
	_ = syscall.Kill(0, syscall.SIGKILL) // 0: this process's group
	return 1                             // not reached: SIGKILL cannot be caught
}

// guardEnviron returns env, the command's environment, as the guard gets
// it: with GODEBUG renamed guardGodebugEnv. It changes env in place.
func guardEnviron(env []string) []string {
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			env[i] = guardGodebugEnv + "=" + v
		}
	}
	return env
}

// commandEnv undoes guardEnviron: it returns the guard's environment env
// with guardGodebugEnv renamed GODEBUG. It changes env in place.
func commandEnv(env []string) []string {
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, guardGodebugEnv+"="); ok {
			env[i] = "GODEBUG=" + v
		}
	}
	return env
}
