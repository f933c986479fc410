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
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/world"
)

// worldRef is the agent's current World, through which the engine and
// the graph sources reach whichever cluster side runs (see move.go), and
// that side's cluster membership.
type worldRef struct {
	*world.Handle
	mu      sync.Mutex
	members func() []cluster.MemberInfo
}

func newWorldRef() *worldRef { return &worldRef{Handle: world.NewHandle()} }

// set makes w, with its side's members, the current World; nil while no
// side runs.
func (r *worldRef) set(w *world.World, members func() []cluster.MemberInfo) {
	r.mu.Lock()
	r.members = members
	r.mu.Unlock()
	r.Set(w)
}

// Members returns the members of the current World's cluster, nil while
// no side runs.
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
// expanded for it), anew on every Build, with its exports and collects.
func declareDeploy(reg *engine.Registry, host string) func(world.Deploy) (*gapi.Declared, error) {
	return func(d world.Deploy) (*gapi.Declared, error) {
		// Read as the file it was deployed from, so that it is named as
		// that file run with run yaml is; the logs name the deploy.
		decl, _, err := yamlgraph.Declare(d.Origin, d.Graph, reg, yamlgraph.Options{Hostname: host})
		if err != nil {
			return nil, fmt.Errorf("deploy %d: %w", d.Number, err)
		}
		decl.Origin = fmt.Sprintf("deploy %d (%s)", d.Number, d.Origin)
		return decl, nil
	}
}

// preferDeploys passes on the graph file's declarations (file; nil: no
// file) until a deploy is declared, then the newest deploy's only: file
// edits are then logged and not run. out should be unbuffered: while the
// receiver is busy a newer declaration replaces the one waiting.
func preferDeploys(ctx context.Context, file, deploys <-chan *gapi.Declared, out chan<- *gapi.Declared,
	log *slog.Logger) error {
	var pending *gapi.Declared
	following := false // a deploy was declared: the file no longer runs
	for {
		var send chan<- *gapi.Declared
		if pending != nil {
			send = out
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- pending:
			pending = nil
		case d := <-file:
			if following {
				log.Warn("the graph file changed, but this host runs the cluster's deploys: not running it",
					"graph", d.Name)
				continue
			}
			pending = d
		case d := <-deploys:
			pending, following = d, true
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

// graphSources are what feeds the engine its graphs: a graph file's
// watcher (nil: none) and the World's deploys if followed, through the
// combiner (which publishes exports and merges collected resources), or
// else the initial graph alone.
type graphSources struct {
	initial *engine.Graph
	watcher *yamlgraph.Watcher
	deploys bool
	noop    bool
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
	// Unbuffered all the way, so each stage holds what the next has not
	// taken yet and can replace it with a newer one.
	graphs := make(chan *engine.Graph)
	decls := make(chan *gapi.Declared)
	var stops []func()
	run := func(fn func(context.Context) error) { stops = append(stops, goRun(fn, onErr)) }
	run(func(ctx context.Context) error { return runGraphs(ctx, decls, s.worlds, s.reg, s.noop, s.log, graphs) })
	var fileDecls chan *gapi.Declared
	if s.watcher != nil {
		fileDecls = decls
	}
	if s.deploys {
		src := &gapi.DeploySource{Worlds: s.worlds, Declare: declareDeploy(s.reg, s.host),
			Logger: s.log.With("component", "deploys")}
		if s.watcher == nil {
			// Nothing else to run: the empty graph until there is a deploy.
			src.Fallback = &gapi.Declared{Name: "empty", Origin: "no deploy yet",
				Build: func() (*engine.Graph, error) { return engine.NewGraph("empty"), nil }}
		} else {
			fileDecls = make(chan *gapi.Declared)
		}
		deployDecls := make(chan *gapi.Declared)
		run(func(ctx context.Context) error { return preferDeploys(ctx, fileDecls, deployDecls, decls, s.log) })
		run(func(ctx context.Context) error { return src.Run(ctx, deployDecls) })
	}
	if s.watcher != nil {
		run(func(ctx context.Context) error { return s.watcher.Source().Run(ctx, fileDecls) })
	}
	return graphs, func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
}
