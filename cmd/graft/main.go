// Command graft is the graft agent and its client: `graft run` keeps a
// resource graph converged on this host.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graftcm/graft/cluster"
)

func main() {
	os.Exit(mainWith(nil))
}

// mainWith runs the process's command line and returns its exit code.
// tune, if not nil, adjusts every cluster server's configuration: the
// tests' agents use it to reconcile membership faster.
func mainWith(tune func(*cluster.ServerConfig)) int {
	ctx, hard, stop := stopSignals(context.Background())
	defer stop()
	return runEnv(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, hard: hard, tune: tune,
		goMetrics: true}, os.Args)
}

// run runs the command line and returns the process exit code: 0 on
// success, the code of an exitError (exitUsage for usage errors), 1
// otherwise.
func run(ctx context.Context, hard <-chan struct{}, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, &env{stdin: os.Stdin, stdout: stdout, stderr: stderr, hard: hard}, args)
}

// runEnv is run with every input and output given.
func runEnv(ctx context.Context, e *env, args []string) int {
	err := newApp(e).RunContext(ctx, args)
	if err == nil && e.unknownCommand != "" {
		err = usageError("unknown command %q (see graft --help)", e.unknownCommand)
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if q, ok := err.(*exitError); !ok || !q.quiet {
		for _, line := range errorLines(err) {
			fmt.Fprintf(e.stderr, "graft: %s\n", line)
		}
	}
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// errorLines are the lines of err's message, without blank ones: several
// causes (errors.Join) print one line each.
func errorLines(err error) []string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimRight(l, " \t"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "error with no message")
	}
	return lines
}

// exitError carries a specific exit code. A quiet one prints nothing:
// the exit code passes on a command's own (graft lock).
type exitError struct {
	code  int
	err   error
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitUsage is the exit code of a command-line mistake: EX_USAGE of
// sysexits.h. Not 2, which `run --noop --converged-exit` gives when
// something would change (see exitWouldChange).
const exitUsage = 64

// usageError marks a command-line mistake (exit code exitUsage).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// repeatWindow is how soon after the first stop signal another one is the
// same request delivered twice rather than a second request: GNU timeout
// signals its child and then the child's process group, microseconds
// apart, and so does a kill sent both to a service and to its group. A
// person pressing Ctrl-C twice, even quickly, is slower than this.
const repeatWindow = 100 * time.Millisecond

// stopSignals returns a context cancelled by the first SIGINT or SIGTERM and
// a channel closed by the second, a signal within repeatWindow of the first
// counting as the first. The returned stop function releases the signals.
func stopSignals(parent context.Context) (context.Context, <-chan struct{}, func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	// After the second signal a third gets the default action: the
	// process dies, whatever it was waiting for.
	ctx, hard, stop := countStops(parent, sigs, func() { signal.Stop(sigs) })
	return ctx, hard, func() {
		signal.Stop(sigs)
		stop()
	}
}

// countStops counts the stop signals received on sigs: the first cancels
// the returned context, the first one more than repeatWindow later closes
// the returned channel and calls afterHard. The returned stop function
// ends the counting and cancels the context; it may be called more than
// once.
func countStops(parent context.Context, sigs <-chan os.Signal, afterHard func()) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(parent)
	hard := make(chan struct{})
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var first time.Time
		for {
			select {
			case <-sigs:
				switch {
				case first.IsZero():
					first = time.Now()
					cancel()
				case time.Since(first) < repeatWindow:
					// The first signal, delivered again.
				default:
					close(hard)
					afterHard()
					return
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return ctx, hard, func() {
		once.Do(func() {
			close(done)
			<-exited
			cancel()
		})
	}
}
