package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/atomicfile"
	"github.com/graftcm/graft/internal/graphviz"
)

func graphvizFlag() cli.Flag {
	return &cli.StringFlag{Name: "graphviz",
		Usage: "keep `FILE` holding the running graph as Graphviz DOT (as `graft graph` prints it): written at start, " +
			"rewritten after each graph swap and state change, at most once a second"}
}

// How often --graphviz's file may be rewritten, and how often it is
// checked for changes no engine event announced (a CheckApply that began).
const (
	graphvizInterval = time.Second
	graphvizPoll     = 5 * time.Second
)

// graphvizFile keeps --graphviz's file holding the running graph as DOT.
// It is an engine Observer: every CheckApply and graph swap wakes it,
// without blocking, and it rewrites the file (atomically) if the drawing
// changed, at most once per graphvizInterval.
type graphvizFile struct {
	path  string
	host  string
	graph func() api.Graph
	log   *slog.Logger
	wake  chan struct{}

	// Owned by run's goroutine once it starts.
	last    []byte
	lastErr string
}

func newGraphvizFile(path, host string, graph func() api.Graph, log *slog.Logger) *graphvizFile {
	return &graphvizFile{path: path, host: host, graph: graph, log: log.With("component", "graphviz"),
		wake: make(chan struct{}, 1)}
}

// CheckApplyDone and GraphSwapped wake the writer; they never block.
func (f *graphvizFile) CheckApplyDone(engine.ApplyEvent) { f.poke() }
func (f *graphvizFile) GraphSwapped(engine.SwapEvent)    { f.poke() }

func (f *graphvizFile) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// start writes the file once: an error (a missing directory, say) stops
// the run before the agent starts.
func (f *graphvizFile) start() error {
	if err := f.write(); err != nil {
		return fmt.Errorf("--graphviz %s: %w", f.path, err)
	}
	return nil
}

// run rewrites the file when woken or every graphvizPoll, at most once per
// graphvizInterval, until ctx ends; then writes it a last time, so that it
// shows the state the agent stopped in.
func (f *graphvizFile) run(ctx context.Context) error {
	poll := time.NewTicker(graphvizPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			f.writeLogged()
			return nil
		case <-f.wake:
		case <-poll.C:
		}
		f.writeLogged()
		select {
		case <-ctx.Done():
			f.writeLogged()
			return nil
		case <-time.After(graphvizInterval):
		}
	}
}

// writeLogged writes the file, logging a failure once until it changes or
// a write succeeds.
func (f *graphvizFile) writeLogged() {
	err := f.write()
	switch {
	case err == nil:
		f.lastErr = ""
	case err.Error() != f.lastErr:
		f.lastErr = err.Error()
		f.log.Error("cannot write the graphviz file", "path", f.path, "err", err)
	}
}

// write replaces the file with the current drawing, unless it is what
// the file holds already.
func (f *graphvizFile) write() error {
	g := f.graph()
	g.Host = f.host
	src := graphviz.DOT(g)
	if f.last != nil && string(src) == string(f.last) {
		return nil
	}
	if err := atomicfile.Write(f.path, src, 0o644, false); err != nil {
		return err
	}
	f.last = src
	return nil
}

// parseGraphvizPath checks --graphviz: empty (off) or a file name.
func parseGraphvizPath(c *cli.Context) (string, error) {
	path := c.String("graphviz")
	switch {
	case path == "" && c.IsSet("graphviz"):
		return "", usageError("--graphviz is empty: give the FILE to write, or leave the flag out")
	case path == "":
		return "", nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("--graphviz %s: %w", path, err)
	}
	return abs, nil
}

// observers tells each of its Observers about every event.
type observers []engine.Observer

func (o observers) CheckApplyDone(ev engine.ApplyEvent) {
	for _, x := range o {
		x.CheckApplyDone(ev)
	}
}

func (o observers) GraphSwapped(ev engine.SwapEvent) {
	for _, x := range o {
		x.GraphSwapped(ev)
	}
}

// addObserver makes cfg's engine tell obs too.
func addObserver(cfg *engine.Config, obs engine.Observer) {
	switch cur := cfg.Observer.(type) {
	case nil:
		cfg.Observer = obs
	case observers:
		cfg.Observer = append(cur, obs)
	default:
		cfg.Observer = observers{cur, obs}
	}
}
