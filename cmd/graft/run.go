package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/internal/fswatch"
	"github.com/graftcm/graft/resources"
)

// abortGrace is how long a second interrupt waits for running resources to
// honour their cancelled contexts before graft exits anyway.
const abortGrace = 10 * time.Second

func runCommand(e *env) *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "hostname", Usage: "this host's name (default: the system hostname)", EnvVars: []string{"GRAFT_HOSTNAME"}},
		&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), Usage: "directory for the agent's state", EnvVars: []string{"GRAFT_DATA_DIR"}},
		&cli.BoolFlag{Name: "tmp-prefix", Usage: "use a fresh temporary data dir, removed on exit (for trying things out)"},
		&cli.IntFlag{Name: "converged-timeout", Value: -1, Usage: "seconds without any change after which this host counts as converged; -1 never"},
		&cli.BoolFlag{Name: "converged-exit", Usage: "exit once converged (needs --converged-timeout); exit 1 if a resource failed; with --noop, exit 2 if one would change"},
		&cli.BoolFlag{Name: "noop", Usage: "check every resource and report what would change, changing nothing"},
		&cli.IntFlag{Name: "sema", Usage: "at most `N` resources apply at once; 0 means no limit"},
		&cli.StringFlag{Name: "converged-status-file", Usage: "keep `PATH` holding the converged state, \"true\" or \"false\" and a newline"},
		&cli.DurationFlag{Name: "export-grace", Value: cluster.DefaultExportGrace, EnvVars: []string{"GRAFT_EXPORT_GRACE"},
			Usage: "withdraw the resources a host exported once it has been gone from the cluster (removed after its dead-node grace, or left) for `DURATION`"},
		&cli.BoolFlag{Name: "cluster-converged", Usage: "with --converged-exit, exit only once every live host of the cluster is converged"},
		deploysFlag(),
		metricsFlag(),
		graphvizFlag(),
	}, append(clusterFlags(), logFlags()...)...)
	return &cli.Command{
		Name:      "run",
		Usage:     "run the agent",
		UsageText: "graft run [flags] yaml FILE\n   graft run [flags] empty",
		Description: "run starts the agent. With `yaml FILE` it converges the graph in FILE and keeps it\n" +
			"converged, repairing drift as it happens. Edits to FILE are swapped in live; an edit\n" +
			"that does not parse is logged and the running graph kept. The first SIGINT or SIGTERM\n" +
			"lets running resources finish, leaves the cluster and exits 0; a second one (more\n" +
			"than 0.1s later: GNU timeout sends two at once) cancels them and exits within\n" +
			"seconds, without leaving.\n\n" +
			"With `empty` it runs the cluster's newest deploy (see graft deploy) and swaps to each\n" +
			"newer one; with --deploys, `yaml FILE` does too once the cluster has a deploy.\n\n" +
			"The agent is a member of a cluster holding the keys `graft kv` reads and writes. With\n" +
			"nobody to --join, a fresh data dir starts a new cluster and prints the command that\n" +
			"joins other nodes to it. The local API listens on <data-dir>/graft.sock.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("run: unexpected argument %q; to run a graph file use: graft run yaml %s", c.Args().First(), c.Args().First())
			}
			return runAgent(c, e, "")
		},
		Subcommands: []*cli.Command{{
			Name:      "yaml",
			Usage:     "run the graph in a YAML file (mgmt's graph format)",
			ArgsUsage: "FILE",
			Flags:     []cli.Flag{deploysFlag()},
			Action: func(c *cli.Context) error {
				file, err := yamlArgs(c)
				if err != nil {
					return err
				}
				return runAgent(c, e, file)
			},
		}, runEmptyCommand(e)},
	}
}

// agentOptions are the run flags, checked.
type agentOptions struct {
	hostname         string
	dataDir          string
	tmp              bool
	convergedTimeout time.Duration
	convergedExit    bool
	noop             bool
	sema             int
	statusFile       string
	exportGrace      time.Duration
	clusterConverged bool      // --cluster-converged
	deploys          bool      // follow the World's deploys
	logFormat        logFormat // what the log is written in, whatever wraps its handler
	metricsAddr      string    // --metrics; empty: no metrics
	graphviz         string    // --graphviz; empty: no DOT file
	clusterOptions
}

func parseAgentOptions(c *cli.Context, format logFormat) (agentOptions, error) {
	o := agentOptions{
		logFormat:     format,
		hostname:      c.String("hostname"),
		dataDir:       c.String("data-dir"),
		tmp:           c.Bool("tmp-prefix"),
		convergedExit: c.Bool("converged-exit"),
		noop:          c.Bool("noop"),
		sema:          c.Int("sema"),
		statusFile:    c.String("converged-status-file"),
		exportGrace:   c.Duration("export-grace"),
		// `run empty` follows deploys; the flag may be on run or on yaml.
		clusterConverged: c.Bool("cluster-converged"),
		deploys:          c.Bool("deploys") || c.Command.Name == "empty",
	}
	var err error
	if o.clusterOptions, err = parseClusterOptions(c); err != nil {
		return o, err
	}
	if o.metricsAddr, err = parseMetricsAddr(c); err != nil {
		return o, err
	}
	if o.graphviz, err = parseGraphvizPath(c); err != nil {
		return o, err
	}
	// The key is parsed: take it out of the environment, which every
	// command an exec resource runs would otherwise inherit.
	os.Unsetenv("GRAFT_TOKEN")
	if o.tmp && c.IsSet("data-dir") {
		return o, usageError("--tmp-prefix and --data-dir both name the data dir: give one")
	}
	if o.exportGrace <= 0 {
		return o, usageError("--export-grace: %v is not a positive duration", o.exportGrace)
	}
	if o.sema < 0 {
		return o, usageError("--sema: %d is not a count (0 means no limit)", o.sema)
	}
	switch t := c.Int("converged-timeout"); {
	case t < -1:
		return o, usageError("--converged-timeout: %d is not a number of seconds (or -1 for never)", t)
	case t == -1:
		o.convergedTimeout = -1
	default:
		o.convergedTimeout = time.Duration(t) * time.Second
	}
	if o.convergedExit && o.convergedTimeout < 0 {
		return o, usageError("--converged-exit needs --converged-timeout")
	}
	if o.clusterConverged && !o.convergedExit {
		return o, usageError("--cluster-converged needs --converged-exit")
	}
	if o.hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return o, fmt.Errorf("hostname: %w (set --hostname)", err)
		}
		o.hostname = h
	}
	if len(o.hostname) > fsm.MaxNameSize || strings.ContainsAny(o.hostname, "/ \t\n") {
		return o, usageError("--hostname %q: want at most %d characters, no slashes or spaces", o.hostname, fsm.MaxNameSize)
	}
	if o.dataDir == "" && !o.tmp {
		return o, usageError("--data-dir is empty")
	}
	return o, nil
}

// engineConfig is the engine configuration the options ask for, less
// OnConverged. Pending refreshes persist under the data dir.
func (o agentOptions) engineConfig(dd *dataDir, log *slog.Logger) engine.Config {
	cfg := engine.DefaultConfig()
	cfg.Hostname = o.hostname
	cfg.Noop = o.noop
	cfg.Sema = o.sema
	cfg.StateDir = filepath.Join(dd.path, "engine")
	cfg.ConvergedTimeout = o.convergedTimeout
	cfg.Logger = log
	return cfg
}

// runAgent runs the agent on the graph in file (none if empty), swapping in
// the file's new graph whenever it is edited.
func runAgent(c *cli.Context, e *env, file string) error {
	format, err := parseLogFormat(c, e.stderr)
	if err != nil {
		return err
	}
	logOut, line := logWriter(format, e.stderr)
	log, err := newLogger(c, logOut, format)
	if err != nil {
		return err
	}
	opts, err := parseAgentOptions(c, format)
	if err != nil {
		return err
	}
	hub, err := fswatch.New(log.With("component", "fswatch"))
	if err != nil {
		return err
	}
	defer hub.Close()
	reg, watcher, graph, err := openGraph(opts, file, hub, log)
	if err != nil {
		return err
	}
	dd, err := openDataDir(opts.dataDir, opts.tmp)
	if err != nil {
		return err
	}
	defer dd.Close()
	a := &agentSetup{log: log, line: line, opts: opts, hub: hub, reg: reg, watcher: watcher, graph: graph, dd: dd}
	if opts.statusFile != "" {
		if a.status, err = newStatusFile(opts.statusFile, log); err != nil {
			return err
		}
	}
	if opts.graphviz != "" {
		// Written at once, empty: a file that cannot be written fails the
		// run before the agent starts.
		a.dotFile = newGraphvizFile(opts.graphviz, opts.hostname, func() api.Graph { return api.Graph{} }, log)
		if err := a.dotFile.start(); err != nil {
			return err
		}
	}
	if opts.metricsAddr != "" {
		if a.metrics, err = openMetrics(opts.metricsAddr, e.goMetrics, log); err != nil {
			return err
		}
	}
	log.Info("starting", "version", version(), "hostname", opts.hostname, "data_dir", dd.path,
		"graph", graph.Name, "resources", graph.Len(), "noop", opts.noop, "sema", opts.sema)
	if err := a.run(c.Context, e); err != nil {
		return err
	}
	log.Info("stopped") // once the cluster side has stopped too
	return nil
}

// agentSetup is what runAgent opened before the agent starts: the log, the
// options, the file watcher, the graph and its watcher, the data dir and
// the status file.
type agentSetup struct {
	log     *slog.Logger
	line    *statusLine // the terminal's progress line; nil when the log is not text on a terminal
	opts    agentOptions
	hub     *fswatch.Hub
	reg     *engine.Registry
	watcher *yamlgraph.Watcher
	graph   *engine.Graph
	dd      *dataDir
	status  *statusFile   // nil without --status-file
	metrics *agentMetrics // nil without --metrics
	dotFile *graphvizFile // nil without --graphviz
}

// run runs the agent until it stops: the cluster server, the World and
// the local API start before the engine and stop after it (deferred
// first, so run last). An orderly stop leaves the cluster first; an abort
// or a failure does not. The agent stops on the first interrupt or when
// asked to leave through the local API.
func (a *agentSetup) run(ctx context.Context, e *env) error {
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	cl, err := startCluster(agentCtx, a.opts, a.dd.path, a.log, e, stopAgent)
	if err != nil {
		a.metrics.close()
		return err
	}
	leave := false
	defer func() { cl.stop(leave, e.hard) }()
	defer a.metrics.serve(cl)()

	engCtx, stopEngine := context.WithCancel(agentCtx)
	defer stopEngine()
	cfg := a.opts.engineConfig(a.dd, a.log)
	// Resources and cluster semaphores use the World of whichever cluster
	// side runs.
	cfg.World, cfg.ClusterSemaphores = cl.worlds, cl.worlds
	conv := newConvergence(a.opts, a.status, cl.worlds, stopEngine, a.log)
	defer conv.start()()
	summary := newRunSummary(&cl.eng, a.opts.noop, a.opts.convergedExit, a.log)
	cfg.OnConverged = a.metrics.onConverged(func(st engine.Status) {
		summary.changed(st, time.Now())
		conv.changed(st)
	})
	a.metrics.observe(&cfg, &cl.eng)
	if a.dotFile != nil {
		a.dotFile.graph = cl.eng.graph
		addObserver(&cfg, a.dotFile)
	}
	eng, err := engine.New(cfg)
	if err != nil {
		return err
	}
	cl.eng.set(eng)
	if a.dotFile != nil {
		// Stopped after the engine: its last write shows where it stopped.
		defer goRun(a.dotFile.run, nil)()
	}

	// Background goroutines, stopped in reverse order of starting by the
	// deferred calls: graph watcher, status writer, then the hub.
	defer goRun(a.hub.Run, func(err error) { a.log.Error("file watcher stopped", "err", err) })()
	if a.status != nil {
		defer goRun(a.status.run, nil)()
	}
	defer goRun(newProgress(&cl.eng, a.line, a.opts.logFormat, a.log).run, nil)()
	watchErr := make(chan error, 1) // a graph source failing stops the agent
	graphs, stopGraphs := graphSources{initial: a.graph, watcher: a.watcher, deploys: a.opts.deploys,
		noop: a.opts.noop, worlds: cl.worlds, reg: a.reg, host: a.opts.hostname, log: a.log}.start(func(err error) {
		watchErr <- err
		stopEngine()
	})
	defer stopGraphs()

	summary.begin(time.Now())
	runErr := runEngine(engCtx, eng, graphs, e.hard, a.log)
	summary.finish(time.Now())
	final := conv.result()
	// A restart of the cluster side that failed, or a graph source that
	// failed, stopped the agent.
	runErr = errors.Join(runErr, cl.failure(), received(watchErr))
	leave = runErr == nil && !isClosed(e.hard)
	return agentResult(runErr, final, a.opts.noop)
}

// received returns the error waiting in ch, if one is.
func received(ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	default:
		return nil
	}
}

// openGraph makes the agent's resource registry and, given a graph file,
// the watcher that keeps its graph current; without one the graph is
// empty.
func openGraph(opts agentOptions, file string, hub *fswatch.Hub, log *slog.Logger) (*engine.Registry, *yamlgraph.Watcher, *engine.Graph, error) {
	// exec records its running commands under the data dir, so that a
	// restart after a crash kills what the crashed agent left running. A
	// temporary data dir is new on every run: there is nothing to find.
	execDir := ""
	if !opts.tmp {
		execDir = filepath.Join(opts.dataDir, "exec")
	}
	reg := resources.NewRegistry(resources.Deps{Files: hub, ExecStateDir: execDir})
	if file == "" {
		return reg, nil, engine.NewGraph("empty"), nil
	}
	loaded := noticeSlow(log, loadNoticeAfter, "loading the graph", "file", file)
	watcher, err := yamlgraph.Open(yamlgraph.WatchConfig{
		Path: file, Registry: reg, Files: hub, Hostname: opts.hostname, Logger: log.With("component", "yamlgraph"),
	})
	if err != nil {
		loaded("loading the graph failed", "file", file)
		return nil, nil, nil, err
	}
	loaded("graph loaded", "file", file, "resources", watcher.Graph().Len())
	return reg, watcher, watcher.Graph(), nil
}

// convergence hands the engine's converged state to the status file, to
// the cluster (this host's converged value) and to --converged-exit, alone
// or with --cluster-converged.
type convergence struct {
	opts        agentOptions
	status      *statusFile // nil: no status file
	published   *convergedPublisher
	clusterWait *clusterConvergence // nil without --cluster-converged
	stopEngine  func()
	log         *slog.Logger
	final       *engine.Status // written on the engine's goroutine, read after Run returns
}

func newConvergence(opts agentOptions, status *statusFile, worlds *worldRef, stopEngine func(), log *slog.Logger) *convergence {
	c := &convergence{opts: opts, status: status, stopEngine: stopEngine, log: log,
		published: newConvergedPublisher(worlds, log.With("component", "converged"))}
	if opts.clusterConverged {
		c.clusterWait = newClusterConvergence(worlds, stopEngine, log)
	}
	return c
}

// start starts publishing and, with --cluster-converged, waiting for the
// cluster; the function returned stops both.
func (c *convergence) start() (stop func()) {
	stopPub := goRun(c.published.run, nil)
	stopWait := func() {}
	if c.clusterWait != nil {
		stopWait = goRun(c.clusterWait.run, nil)
	}
	return func() {
		stopWait()
		stopPub()
	}
}

// changed is the engine's OnConverged: it runs on the engine's goroutine.
func (c *convergence) changed(s engine.Status) {
	c.status.set(s.Converged)
	c.published.set(s.Converged)
	c.clusterWait.set(s)
	if !s.Converged {
		c.log.Info("no longer converged")
		return
	}
	c.log.Info("converged", "failed", len(s.Failed))
	if c.opts.convergedExit && !c.opts.clusterConverged && c.final == nil {
		c.final = &s
		c.stopEngine()
	}
}

// result is the converged state --converged-exit stopped the agent on, if
// it did, once the engine has returned.
func (c *convergence) result() *engine.Status {
	if c.clusterWait != nil {
		return c.clusterWait.final()
	}
	return c.final
}

// agentResult maps how the engine stopped to the command's error: nil, an
// abort (exit 130), or, after --converged-exit, the resources that failed
// (exit 1) or, with --noop, those that would change (exit 2). Resources
// with meta noop in a run without --noop do not count: their owner chose
// to leave them as they are.
func agentResult(runErr error, final *engine.Status, noop bool) error {
	switch {
	case errors.Is(runErr, engine.ErrAborted):
		return &exitError{code: 130, err: errors.New("aborted: running resources were cancelled")}
	case runErr != nil:
		return runErr
	case final != nil && len(final.Failed) > 0:
		err := fmt.Errorf("converged with %d failed resources: %s", len(final.Failed), idNames(final.Failed))
		if noop && len(final.WouldChange) > 0 {
			err = fmt.Errorf("%w; %d more would change: %s", err, len(final.WouldChange), idNames(final.WouldChange))
		}
		return &exitError{code: 1, err: err}
	case final != nil && noop && len(final.WouldChange) > 0:
		return &exitError{code: exitWouldChange, err: fmt.Errorf("noop: %d resources would change: %s",
			len(final.WouldChange), idNames(final.WouldChange))}
	}
	return nil
}

// exitWouldChange is the exit code of `run --noop --converged-exit` when
// something would change, as Puppet's --detailed-exitcodes has it.
const exitWouldChange = 2

// idNames lists ids as kind[name], comma-separated.
func idNames(ids []engine.ID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return strings.Join(names, ", ")
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// goRun runs fn on a goroutine of its own until the returned stop function
// is called; stop cancels fn's context and waits for it to return. If fn
// returns an error, onErr (if not nil) is called with it on fn's goroutine.
func goRun(fn func(context.Context) error, onErr func(error)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && onErr != nil {
			onErr(err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// runEngine runs the engine until it stops. When hard closes it aborts the
// engine, and gives up waiting after abortGrace.
func runEngine(ctx context.Context, eng *engine.Engine, graphs chan *engine.Graph, hard <-chan struct{}, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, graphs) }()
	select {
	case err := <-done:
		return err
	case <-hard:
	}
	log.Warn("second interrupt: cancelling running resources")
	eng.Abort()
	select {
	case err := <-done:
		return err
	case <-time.After(abortGrace):
		return &exitError{code: 130, err: fmt.Errorf("aborted: resources still running after %v; exiting anyway", abortGrace)}
	}
}
