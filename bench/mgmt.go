package main

import (
	"context"
	"time"
)

// mgmtConverge runs mgmt on file until it has converged and exits
// (--converged-timeout=0). mgmt prints no line when it converges, so its
// figure is the whole process's time, exit included: an upper bound.
func mgmtConverge(ctx context.Context, bin, file string) (convergeRun, error) {
	p, err := startProc(ctx, "mgmt", bin, []string{"run", "--tmp-prefix", "--no-pgp", "--converged-timeout=0",
		"yaml", "--yaml", file}, nil)
	if err != nil {
		return convergeRun{}, err
	}
	if err := p.wait(30 * time.Minute); err != nil {
		return convergeRun{}, p.failure("run to convergence", err)
	}
	return convergeRun{converged: time.Since(p.start), cpu: p.cpu(), rssMiB: p.maxRSSMiB()}, nil
}
