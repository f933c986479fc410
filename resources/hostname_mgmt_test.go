package resources

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// runMgmtExample runs a parsed graph on an engine of its own, without a World,
// logging to log, until the test ends; it returns a channel that receives
// each time the engine converges.
func runMgmtExample(t *testing.T, res *yamlgraph.Result, log *slog.Logger) <-chan struct{} {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.ConvergedTimeout, cfg.Logger = 0, log
	return runConverging(t, res.Graph, cfg)
}

// runConverging runs g on an engine made with cfg until the test ends; it
// returns a channel that receives each time the engine converges.
func runConverging(t *testing.T, g *engine.Graph, cfg engine.Config) <-chan struct{} {
	t.Helper()
	converged := make(chan struct{}, 1)
	cfg.OnConverged = func(s engine.Status) {
		if s.Converged {
			select {
			case converged <- struct{}{}:
			default:
			}
		}
	}
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	graphs := make(chan *engine.Graph, 1)
	graphs <- g
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, graphs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return converged
}

// mgmt's hostname example runs with its documented meaning: hostname alone
// sets all three names, and the engine puts the kernel's name back when
// another process changes it.
func TestHostnameMgmtExampleSetsAllNamesAndKeepsThem(t *testing.T) {
	if !inUTSSandbox(t) {
		runInUTSSandbox(t)
		return
	}
	const want = "test.hostname.example.com"
	res, err := yamlgraph.Parse("hostname.yaml", mgmtExample(t, "hostname.yaml"), NewRegistry(Deps{Files: hostnameHub(t)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, warn := range res.Warnings {
		t.Errorf("warning: %v", warn)
	}
	converged := runMgmtExample(t, res, nil)
	waitConverged(t, converged)
	if n := kernelName(t); n != want {
		t.Errorf("kernel name %q, want %q", n, want)
	}
	if got := readFile(t, staticNameFile); got != want+"\n" {
		t.Errorf("/etc/hostname holds %q", got)
	}
	if got := prettyName(t); got != want {
		t.Errorf("pretty name %q", got)
	}
	runOther(t, "hostname", "intruder")
	eventually(t, time.Minute, "the kernel name to be put back", func() bool { return kernelName(t) == want })
}
