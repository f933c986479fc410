package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/yamlgraph"
)

// worldRef is the agent's current World and cluster membership, replaced
// when the cluster side restarts (see move.go).
//
// TODO(lead): world.Handle (the kv work) is the shared form of this; once
// it lands, hand the deploy source and the converged publisher the Handle
// and keep only the members here.
type worldRef struct {
	mu       sync.Mutex
	w        *world.World
	members  func() []cluster.MemberInfo
	replaced chan struct{}
}

func newWorldRef() *worldRef { return &worldRef{replaced: make(chan struct{})} }

// set makes w, with its side's members, the current World.
func (r *worldRef) set(w *world.World, members func() []cluster.MemberInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.replaced)
	r.w, r.members, r.replaced = w, members, make(chan struct{})
}

// Current returns the current World (nil before the first) and a channel
// closed when it is replaced.
func (r *worldRef) Current() (*world.World, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w, r.replaced
}

// Members returns the members of the current World's cluster, nil before
// the first.
func (r *worldRef) Members() []cluster.MemberInfo {
	r.mu.Lock()
	members := r.members
	r.mu.Unlock()
	if members == nil {
		return nil
	}
	return members()
}

// declareDeploy returns what turns a deploy into the graph this host
// declares: the deploy's file parsed for host (a templated graph is
// expanded for it), anew on every Build.
//
// TODO(lead): when yamlgraph produces gapi.Declared (the export work),
// declare through it, so that a deploy's exports and collects are
// honoured too.
func declareDeploy(reg *engine.Registry, host string) func(world.Deploy) (*gapi.Declared, error) {
	return func(d world.Deploy) (*gapi.Declared, error) {
		origin := fmt.Sprintf("deploy %d (%s)", d.Number, d.Origin)
		parse := func() (*engine.Graph, error) {
			res, err := yamlgraph.ParseWith(origin, d.Graph, reg, yamlgraph.Options{Hostname: host})
			if err != nil {
				return nil, err
			}
			return res.Graph, nil
		}
		g, err := parse()
		if err != nil {
			return nil, err
		}
		return &gapi.Declared{Name: g.Name, Origin: origin, Build: parse}, nil
	}
}

// feedEngine is the seam between the graph sources and the engine: it
// sends the engine the file's graphs (nil: no file) until a deploy is
// declared, then the newest declared deploy's graph; file edits are then
// logged and not run. out should be unbuffered: while the engine is busy
// a newer graph replaces the one waiting.
//
// TODO(lead): this stands in for gapi's combiner (the export work), which
// also publishes exports and merges collected resources: route both
// sources through it and drop this.
func feedEngine(ctx context.Context, file <-chan *engine.Graph, deploys <-chan *gapi.Declared,
	out chan<- *engine.Graph, log *slog.Logger) error {
	var pending *engine.Graph
	following := false // a deploy was declared: the file no longer runs
	for {
		var send chan<- *engine.Graph
		if pending != nil {
			send = out
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- pending:
			pending = nil
		case g := <-file:
			if following {
				log.Warn("the graph file changed, but this host runs the cluster's deploys: not running it",
					"graph", g.Name)
				continue
			}
			pending = g
		case d := <-deploys:
			g, err := d.Build()
			if err != nil {
				log.Error("cannot build the deploy's graph; keeping the running graph", "origin", d.Origin, "err", err)
				continue
			}
			pending, following = g, true
		}
	}
}

// deploysFlag is --deploys, taken by run and by run yaml.
func deploysFlag() cli.Flag {
	return &cli.BoolFlag{Name: "deploys", Usage: "follow the cluster's deploys: the newest deploy replaces the graph file's once one exists"}
}

// yamlArgs returns the graph file of `run yaml`, which may be followed by
// --deploys (`graft run yaml FILE --deploys`): flags after the file are
// not parsed as flags otherwise.
func yamlArgs(c *cli.Context) (string, error) {
	if c.NArg() == 2 && (c.Args().Get(1) == "--deploys" || c.Args().Get(1) == "-deploys") {
		if err := c.Set("deploys", "true"); err != nil {
			return "", err
		}
		return c.Args().First(), nil
	}
	return oneArg(c, "graph file")
}

func runEmptyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "empty",
		Usage: "run no graph of this host's own: run the cluster's deploys",
		Description: "empty runs the newest of the cluster's deploys (see graft deploy), and swaps to a newer\n" +
			"one as soon as it is stored. Until the cluster has a deploy, nothing runs.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("run empty: unexpected argument %q", c.Args().First())
			}
			return runAgent(c, e, "")
		},
	}
}

// followDeploys runs the deploy source and feeds the engine through out
// from it and from fileGraphs (nil without a graph file) until the
// returned function is called. onErr gets a source's failure.
func followDeploys(worlds *worldRef, reg *engine.Registry, host string, fileGraphs <-chan *engine.Graph,
	out chan<- *engine.Graph, log *slog.Logger, onErr func(error)) (stop func()) {
	src := &gapi.DeploySource{Worlds: worlds, Declare: declareDeploy(reg, host), Logger: log.With("component", "deploys")}
	if fileGraphs == nil {
		// Nothing else to run: the empty graph until there is a deploy.
		src.Fallback = &gapi.Declared{Name: "empty", Origin: "no deploy yet",
			Build: func() (*engine.Graph, error) { return engine.NewGraph("empty"), nil }}
	}
	decls := make(chan *gapi.Declared)
	stopSource := goRun(func(ctx context.Context) error { return src.Run(ctx, decls) }, onErr)
	stopFeed := goRun(func(ctx context.Context) error { return feedEngine(ctx, fileGraphs, decls, out, log) }, onErr)
	return func() {
		stopFeed()
		stopSource()
	}
}

// graphSources are what feeds the engine its graphs: a graph file's
// watcher (nil: none), the World's deploys if followed, or else the
// initial graph alone.
type graphSources struct {
	initial *engine.Graph
	watcher *yamlgraph.Watcher
	deploys bool
	worlds  *worldRef
	reg     *engine.Registry
	host    string
	log     *slog.Logger
}

// start starts the sources and returns the channel the engine takes its
// graphs from, and the function that stops them. onErr gets a source's
// failure.
func (s graphSources) start(onErr func(error)) (chan *engine.Graph, func()) {
	if s.watcher == nil && !s.deploys {
		graphs := make(chan *engine.Graph, 1)
		graphs <- s.initial
		return graphs, func() {}
	}
	// Unbuffered, so a source holds the graph the engine has not taken
	// yet and can replace it with a newer one.
	graphs := make(chan *engine.Graph)
	var stops []func()
	fileGraphs := graphs
	if s.deploys {
		fileGraphs = nil
		if s.watcher != nil {
			fileGraphs = make(chan *engine.Graph)
		}
		stops = append(stops, followDeploys(s.worlds, s.reg, s.host, fileGraphs, graphs, s.log, onErr))
	}
	if s.watcher != nil {
		stops = append(stops, goRun(func(ctx context.Context) error { return s.watcher.Run(ctx, fileGraphs) }, onErr))
	}
	return graphs, func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
}
