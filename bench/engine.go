package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// convergeRun is one run of a graph to its first convergence.
type convergeRun struct {
	converged time.Duration // process start to the converged line
	cpu       time.Duration // the process's user and system CPU time, to its exit
	rssMiB    float64       // the process's peak RSS
}

// graftAgentArgs are the flags every agent the driver starts on its own
// gets: loopback ports the system picks, JSON logs.
func graftAgentArgs(extra ...string) []string {
	return append([]string{"run", "--cluster-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
		"--no-discover", "--log-format", "json"}, extra...)
}

// summaryLine is the part of graft's JSON log the driver reads.
type summaryLine struct {
	Msg     string  `json:"msg"`
	Summary string  `json:"summary"`
	Seconds float64 `json:"seconds"`
}

// graftConverge runs graft on file until it converges (--converged-timeout=0
// --converged-exit), on a fresh data dir, and times it from the process
// start to its "converged in" line: parsing, the cluster side's start and
// the engine, not the exit.
func graftConverge(ctx context.Context, bin, file, data string) (convergeRun, error) {
	p, err := startProc(ctx, "graft", bin, graftAgentArgs("--data-dir", data, "--converged-timeout=0",
		"--converged-exit", "yaml", file), nil)
	if err != nil {
		return convergeRun{}, err
	}
	var mu sync.Mutex
	var at time.Time
	p.watch(func(line string, t time.Time) {
		var s summaryLine
		if strings.Contains(line, `"summary"`) && json.Unmarshal([]byte(line), &s) == nil && s.Summary == "converged" {
			mu.Lock()
			if at.IsZero() {
				at = t
			}
			mu.Unlock()
		}
	})
	if err := p.wait(10 * time.Minute); err != nil {
		return convergeRun{}, p.failure("run to convergence", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if at.IsZero() {
		return convergeRun{}, p.failure("run to convergence", errors.New("exited without a converged summary line"))
	}
	return convergeRun{converged: at.Sub(p.start), cpu: p.cpu(), rssMiB: p.maxRSSMiB()}, nil
}

// swapDrift are the timings of one agent run: one-resource swaps in a
// big graph and drift repairs.
type swapDrift struct {
	swaps, drifts []time.Duration
}

// graftSwapDrift runs graft on n noops and one file, then rewrites the
// graph swaps times with a new content for the file, timing each from the
// rename of the new graph into place until the file holds the new
// content; then deletes the file drifts times, timing each until the file
// is back. The file is polled every 200µs.
func graftSwapDrift(ctx context.Context, bin, dir string, n, swaps, drifts int) (swapDrift, error) {
	var out swapDrift
	graph, target := filepath.Join(dir, "swap.yaml"), filepath.Join(dir, "swapped")
	if err := swapGraph(graph, n, target, "v0\n"); err != nil {
		return out, err
	}
	p, err := startProc(ctx, "graft", bin, graftAgentArgs("--data-dir", filepath.Join(dir, "data"), "yaml", graph), nil)
	if err != nil {
		return out, err
	}
	defer p.kill()
	if err := waitContent(ctx, p, target, "v0\n", 2*time.Minute); err != nil {
		return out, err
	}
	for i := 1; i <= swaps; i++ {
		want := fmt.Sprintf("v%d\n", i)
		// The graph is written aside first: only the rename is timed.
		start := time.Now()
		if err := swapGraph(graph, n, target, want); err != nil {
			return out, err
		}
		if err := waitContent(ctx, p, target, want, time.Minute); err != nil {
			return out, err
		}
		out.swaps = append(out.swaps, time.Since(start))
	}
	want := fmt.Sprintf("v%d\n", swaps)
	for range drifts {
		if err := settle(ctx, 100*time.Millisecond); err != nil {
			return out, err
		}
		start := time.Now()
		if err := os.Remove(target); err != nil {
			return out, err
		}
		if err := waitContent(ctx, p, target, want, time.Minute); err != nil {
			return out, err
		}
		out.drifts = append(out.drifts, time.Since(start))
	}
	return out, nil
}

// waitContent polls until path holds want.
func waitContent(ctx context.Context, p *proc, path, want string, timeout time.Duration) error {
	err := poll(ctx, timeout, 200*time.Microsecond, func() (bool, error) {
		if p.exited() {
			return false, errors.New("the agent exited")
		}
		b, err := os.ReadFile(path)
		return err == nil && string(b) == want, nil
	})
	if err != nil {
		return p.failure(fmt.Sprintf("waiting for %s to hold %q", path, want), err)
	}
	return nil
}

// settle waits d, or less if ctx ends: the pause between two drifts, so
// that the agent does not see them as one flapping file.
func settle(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
