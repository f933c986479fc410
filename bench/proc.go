package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server process the driver started: a graft agent or an etcd
// member. Its output is kept (the last lines, for errors) and every line
// is offered to the watchers.
type proc struct {
	name  string
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{} // closed once the process has exited
	err   error         // Wait's error, set before done closes

	mu       sync.Mutex
	tail     []string
	watchers []func(line string, at time.Time)
}

// startProc starts bin with args; its stdout and stderr go to the proc's
// lines. The process is killed if ctx ends first.
func startProc(ctx context.Context, name, bin string, args []string, env []string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.WaitDelay = 5 * time.Second
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.readLines(r)
	}()
	go func() {
		p.err = p.cmd.Wait()
		w.Close()
		<-read
		close(p.done)
	}()
	return p, nil
}

// readLines hands each output line to the watchers and keeps the last 20.
func (p *proc) readLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		at, line := time.Now(), sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 20 {
			p.tail = p.tail[1:]
		}
		ws := p.watchers
		p.mu.Unlock()
		for _, w := range ws {
			w(line, at)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// watch calls fn with every later output line and when it was read.
func (p *proc) watch(fn func(line string, at time.Time)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watchers = append(p.watchers, fn)
}

// output is the last lines the process wrote, for error messages.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit, up to timeout (then it is killed).
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s: still running after %v: killed", p.name, timeout)
	}
}

// kill kills the process with SIGKILL and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// maxRSSMiB is the process's peak resident memory, once it has exited.
func (p *proc) maxRSSMiB() float64 {
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return 0
}

// cpu is the user and system CPU time the process used, once it has
// exited: on a busy machine, a figure that waiting for a core does not
// inflate.
func (p *proc) cpu() time.Duration {
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// peakRSSMiB is the running process's peak resident memory so far
// (VmHWM), 0 if it cannot be read.
func (p *proc) peakRSSMiB() float64 {
	v := procField("/proc/"+strconv.Itoa(p.cmd.Process.Pid)+"/status", "VmHWM")
	kib, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(v, "kB")))
	if err != nil {
		return 0
	}
	return float64(kib) / 1024
}

// failure describes the process's failure with the end of its output.
func (p *proc) failure(what string, err error) error {
	return fmt.Errorf("%s: %s: %w; its last output:\n%s", p.name, what, err, p.output())
}

// errTimeout is returned when a condition polled for does not come.
var errTimeout = errors.New("timed out")

// poll calls cond every interval until it returns true, the deadline
// passes (errTimeout, with cond's last error) or ctx ends.
func poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w after %v: %w", errTimeout, timeout, err)
			}
			return fmt.Errorf("%w after %v", errTimeout, timeout)
		case <-tick.C:
		}
	}
}

// freePorts returns n loopback ports that were free for both TCP and UDP
// a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var hold []io.Closer
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		hold = append(hold, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken for UDP: try another
		}
		hold = append(hold, pc)
		ports = append(ports, port)
	}
	return ports, nil
}
