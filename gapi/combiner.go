package gapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// Worlds gives the combiner the World of the moment: the agent's cluster
// side can restart and make a new one. world.Handle satisfies it.
type Worlds interface {
	// Current returns the current World, nil while there is none, and a
	// channel closed when it is replaced.
	Current() (*world.World, <-chan struct{})
}

// Static returns the Worlds that always give w.
func Static(w *world.World) Worlds { return static{w} }

type static struct{ w *world.World }

func (s static) Current() (*world.World, <-chan struct{}) { return s.w, nil }

// DefaultSettle is how long the combiner lets changes of the World's
// exports gather before it builds a new graph.
const DefaultSettle = 100 * time.Millisecond

// Config configures a Combiner.
type Config struct {
	// Worlds gives the World exports are published to and collected from.
	// Nil means none: graphs run as declared, and what they export or
	// collect is logged and ignored.
	Worlds Worlds
	// Decode rebuilds collected resources. Required with Worlds.
	Decode Decoder
	// Noop exports nothing (graft run --noop changes nothing anywhere);
	// collecting goes on.
	Noop bool
	// Settle is how long changes of the World's exports gather before a
	// new graph is built; zero means DefaultSettle.
	Settle time.Duration
	// RetryDelay is the longest wait between attempts to publish exports
	// the World refused (no leader, say); zero means 10s.
	RetryDelay time.Duration
	// Logger receives what the combiner does; nil discards it.
	Logger *slog.Logger
}

// Combiner turns declared graphs into the graphs the engine runs: it keeps
// the newest Declared, publishes its exports as this host's whole export
// set, and merges into a fresh build of it the exported resources its
// collects select, from every host, sending a new graph whenever either
// changes.
type Combiner struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Combiner.
func New(cfg Config) (*Combiner, error) {
	switch {
	case cfg.Worlds != nil && cfg.Decode == nil:
		return nil, errors.New("gapi: Decode is nil")
	case cfg.Settle < 0:
		return nil, errors.New("gapi: Settle is negative")
	case cfg.RetryDelay < 0:
		return nil, errors.New("gapi: RetryDelay is negative")
	}
	if cfg.Settle == 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Combiner{cfg: cfg, log: log}, nil
}

// RunSource runs src and the combiner on what it declares until ctx ends
// or src fails, and returns src's error.
func (c *Combiner) RunSource(ctx context.Context, src Source, out chan<- *engine.Graph) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan *Declared)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, in, out) }()
	err := src.Run(ctx, in)
	cancel()
	return errors.Join(err, <-done)
}

// Run combines the graphs declared on in and sends them on out until ctx
// ends, then returns nil. The first graph goes as soon as the first
// Declared arrives; then a new one whenever a newer Declared arrives or
// the exports it collects change, within Settle. While the engine has not
// taken a graph, a newer one replaces it: out should be unbuffered. A
// graph that fails to build is logged and the running graph kept.
func (c *Combiner) Run(ctx context.Context, in <-chan *Declared, out chan<- *engine.Graph) error {
	r := &run{c: c, exports: map[string]world.Exported{}, settle: time.NewTimer(0)}
	r.settle.Stop()
	defer r.settle.Stop()
	pubs := make(chan publication, 1)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		c.publisher(ctx, pubs)
	}()
	defer func() { <-pubDone }()
	r.pubs = pubs
	defer r.stopWatch()
	var replaced <-chan struct{}
	if c.cfg.Worlds != nil {
		replaced = r.follow(ctx)
	}
	for {
		var send chan<- *engine.Graph
		if r.pending != nil {
			send = out
		}
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-in:
			if !ok { // no more declarations: collecting goes on
				in = nil
				continue
			}
			r.declare(d)
		case <-replaced:
			replaced = r.follow(ctx)
		case ev, ok := <-r.events:
			r.watched(ev, ok)
		case <-r.caughtUp:
			r.current, r.caughtUp = true, nil
			r.rebuild(false)
		case <-r.settle.C:
			r.armed = false
			r.republish()
			r.rebuild(false)
		case send <- r.pending:
			r.pending = nil
		}
	}
}

// run is the state of one Run, touched only by its goroutine.
type run struct {
	c       *Combiner
	decl    *Declared
	w       *world.World
	events  <-chan world.WatchEvent
	unwatch context.CancelFunc
	// current: w's local copy has been brought up to date (a
	// linearizable read), so what it exports can be collected; before, it
	// may be an old snapshot. caughtUp delivers it; linDone closes when
	// the goroutine that waits for it ends.
	current  bool
	caughtUp <-chan struct{}
	linDone  <-chan struct{}
	exports  map[string]world.Exported // every host's, by World key
	settle   *time.Timer
	armed    bool // settle is running
	pubs     chan publication
	sig      [sha256.Size]byte // of the collected resources last merged
	built    *Declared         // the Declared last built
	pending  *engine.Graph     // the graph not yet taken by the engine
	warnedNW bool              // said that there is no World
	// want is this host's export set as last published to w, by World
	// key; nil when nothing is published (noop, no World).
	want map[string][]byte
	// ownChanged: this host's exports in the World changed since
	// republish last looked; republished is when it last published them
	// again.
	ownChanged  bool
	republished time.Time
}

// declare takes a newer Declared: publish its exports, build its graph.
func (r *run) declare(d *Declared) {
	if d == nil {
		return
	}
	r.decl = d
	r.publish()
	r.rebuild(true)
}

// follow switches to the current World: it watches its exports (reading
// them all first) and publishes the declared exports there. It returns the
// channel closed when that World is replaced.
func (r *run) follow(ctx context.Context) <-chan struct{} {
	r.stopWatch()
	w, replaced := r.c.cfg.Worlds.Current()
	r.w = w
	clear(r.exports)
	if w != nil {
		xs, rev, err := w.Collect(ctx, "", "")
		if err != nil {
			r.c.log.Warn("cannot read the World's exports", "err", err)
		}
		for _, x := range xs {
			r.exports[exportKey(x)] = x
		}
		wctx, cancel := context.WithCancel(ctx)
		r.events, r.unwatch = w.WatchExports(wctx, rev), cancel
		caughtUp, linDone := make(chan struct{}, 1), make(chan struct{})
		r.current, r.caughtUp, r.linDone = false, caughtUp, linDone
		go func() {
			defer close(linDone)
			r.c.linearize(wctx, w, caughtUp)
		}()
	}
	if r.decl != nil {
		r.publish()
		r.rebuild(false)
	}
	return replaced
}

// stopWatch stops the watch of the World's exports and waits for it.
func (r *run) stopWatch() {
	if r.unwatch == nil {
		return
	}
	r.unwatch()
	for range r.events {
	}
	<-r.linDone
	r.events, r.unwatch, r.caughtUp, r.linDone = nil, nil, nil, nil
}

// linearize brings w's local copy up to date with the cluster, trying
// again until it can or ctx ends, and then says so on caughtUp.
func (c *Combiner) linearize(ctx context.Context, w *world.World, caughtUp chan<- struct{}) {
	delay := time.Duration(0)
	for {
		err := w.Linearize(ctx)
		if err == nil {
			caughtUp <- struct{}{}
			return
		}
		if ctx.Err() != nil {
			return
		}
		delay = min(max(2*delay, 100*time.Millisecond), c.cfg.RetryDelay)
		c.log.Warn("cannot reach the cluster's leader; collecting nothing until then", "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// watched applies a change of the World's exports.
func (r *run) watched(ev world.WatchEvent, ok bool) {
	if !ok { // the watch stopped: the World is closing or failed
		r.c.log.Warn("stopped watching the World's exports")
		r.stopWatch()
		return
	}
	if ev.Resync {
		clear(r.exports)
		for _, kv := range ev.State {
			if x, ok := world.ParseExportKey(kv.Key); ok {
				x.Data = kv.Value
				r.exports[kv.Key] = x
			}
		}
	}
	own := ev.Resync // this host's exports changed
	for _, e := range ev.Events {
		x, ok := world.ParseExportKey(e.KV.Key)
		if !ok {
			continue
		}
		own = own || x.Host == r.w.Host()
		if e.Type == fsm.EventDelete {
			delete(r.exports, e.KV.Key)
			continue
		}
		x.Data = e.KV.Value
		r.exports[e.KV.Key] = x
	}
	r.ownChanged = r.ownChanged || own
	if !r.armed { // a steady stream of changes must not postpone the build
		r.settle.Reset(r.c.cfg.Settle)
		r.armed = true
	}
}

// rebuild builds the declared graph with what it collects now, unless
// neither changed since the last build (force: the Declared is new).
func (r *run) rebuild(force bool) {
	if r.decl == nil {
		return
	}
	log := r.c.log.With("graph", r.decl.Name, "origin", r.decl.Origin)
	var cs []candidate
	switch {
	case len(r.decl.Collects) == 0:
	case r.w == nil:
		if !r.warnedNW {
			log.Warn("no World to collect from yet; running the graph without collected resources")
			r.warnedNW = true
		}
	case !r.current:
		// The local copy may be old: collect once it is the cluster's.
	default:
		cs = candidates(r.exports, r.decl.Collects, r.w.Host(), log)
	}
	sig := signature(cs)
	if !force && r.built == r.decl && sig == r.sig {
		return
	}
	g, err := merge(r.decl.Build, decodeAll(cs, r.c.cfg.Decode, log), log)
	if err != nil {
		log.Error("cannot build the graph; keeping the running one", "err", err)
		return
	}
	r.built, r.sig, r.pending = r.decl, sig, g
	log.Info("graph ready", "resources", g.Len(), "collected", len(cs))
}

// publish hands the declared exports to the publisher, for the current
// World.
func (r *run) publish() {
	d, log := r.decl, r.c.log
	r.want = nil
	switch {
	case r.c.cfg.Noop:
		if len(d.Exports) > 0 {
			log.Info("noop: exporting nothing", "graph", d.Name, "exports", len(d.Exports))
		}
		return
	case r.w == nil:
		if len(d.Exports) > 0 {
			log.Warn("no World to export to yet", "graph", d.Name, "exports", len(d.Exports))
		}
		return
	}
	xs, err := encodeExports(d.Exports)
	if err != nil {
		log.Error("cannot export the graph's resources", "graph", d.Name, "err", err)
		return
	}
	r.want = make(map[string][]byte, len(xs))
	for _, x := range xs {
		r.want[exportKey(world.Exported{Host: r.w.Host(), Kind: x.Kind, Name: x.Name})] = x.Data
	}
	select { // the newest replaces one not yet taken
	case <-r.pubs:
	default:
	}
	r.pubs <- publication{w: r.w, exports: xs}
}

// republish publishes this host's exports again if the World's changed
// and are not those last published: the cluster withdrew them (this host
// was removed from it, then came back), and nothing else would publish
// them again. It does so at most once per RetryDelay, so that two agents
// calling themselves one host (a cloned machine) do not flood the cluster
// each putting back its own set.
func (r *run) republish() {
	if !r.ownChanged {
		return
	}
	if r.want == nil || r.published() {
		r.ownChanged = false
		return
	}
	if wait := r.c.cfg.RetryDelay - time.Since(r.republished); !r.republished.IsZero() && wait > 0 {
		r.settle.Reset(wait)
		r.armed = true
		return
	}
	r.ownChanged, r.republished = false, time.Now()
	r.c.log.Warn("this host's exports are not in the World as published; publishing them again")
	r.publish()
}

// published reports whether the World's exports of this host are those
// last published. While a publication is on its way they are not: it is
// then published again, which changes nothing once it is in.
func (r *run) published() bool {
	n := 0
	for key, x := range r.exports {
		if x.Host != r.w.Host() {
			continue
		}
		if data, ok := r.want[key]; !ok || !bytes.Equal(data, x.Data) {
			return false
		}
		n++
	}
	return n == len(r.want)
}

func exportKey(x world.Exported) string {
	return fsm.ExportPrefix + x.Host + "/" + x.Kind + "/" + x.Name
}
