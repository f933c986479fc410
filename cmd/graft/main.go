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
	"syscall"

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
	return runEnv(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, hard: hard, tune: tune}, os.Args)
}

// run runs the command line and returns the process exit code: 0 on
// success, the code of an exitError, 2 for usage errors, 1 otherwise.
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
	fmt.Fprintf(e.stderr, "graft: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks a command-line mistake (exit code 2).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// stopSignals returns a context cancelled by the first SIGINT or SIGTERM and
// a channel closed by the second. The returned stop function releases the
// signals.
func stopSignals(parent context.Context) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(parent)
	hard := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-sigs:
				n++
				if n == 1 {
					cancel()
				} else if n == 2 {
					close(hard)
					// A third signal gets the default action: the
					// process dies, whatever it was waiting for.
					signal.Stop(sigs)
				}
			case <-done:
				return
			}
		}
	}()
	var stopped bool
	return ctx, hard, func() {
		if stopped {
			return
		}
		stopped = true
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
