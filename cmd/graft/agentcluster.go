package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	apiserver "github.com/graftcm/graft/api/server"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/world"
)

// agentCluster is the agent's cluster side: the cluster server, the World
// on it and the local API. A node that never had a peer restarts it to
// join another cluster (see move.go); the engine runs on meanwhile, on
// worlds, which each side sets to its World.
type agentCluster struct {
	o        agentOptions
	dir      string
	log      *slog.Logger
	e        *env
	shutdown func()        // makes the agent stop
	left     *leaveOutcome // how the leave went, for the API's /v1/leave
	worlds   *worldRef     // the current side's World: for the engine, graph sources, converged states
	eng      engineRef     // the engine, once made: for the API's /v1/resources
	api      apiFront      // the local API's listeners and HTTP server, open across sides
	// oneShot: the cluster lives in memory, for this run only (see
	// isOneShot).
	oneShot bool
	// moves are the restarts asked for, made by a goroutine that
	// stopMoves stops (as does the agent beginning to stop) and that
	// closes movesDone when it returns.
	moves     *moveQueue
	stopMoves context.CancelFunc
	movesDone chan struct{}

	mu      sync.Mutex // held while the side restarts
	side    *clusterSide
	serving atomic.Pointer[cluster.Server] // the side's server while its World serves; for the metrics
	gens    uint64                         // sides started

	disc *agentDiscovery // nil: discovery is off

	// Not under mu: the agent reads it as it stops, while a restart may
	// hold mu for long.
	errMu sync.Mutex
	err   error // why a restart failed, or the damage found: the agent stops with it
}

// clusterSide is one run of the cluster server, the World on it and the
// local API.
type clusterSide struct {
	srv   *cluster.Server
	key   clusterKey
	seeds []string
	gen   uint64   // which of the agent's sides it is, from 1
	stops []func() // in the order things started
}

// stop stops what the side started, in the reverse order.
func (s *clusterSide) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// startCluster starts, in this order, the cluster server (bootstrapping or
// joining as the options say), the World and the local API. The join
// command of a new cluster goes to e.stderr. ctx ends when the agent
// begins to stop: no restart of the cluster side is made after that. The
// API's /v1/leave calls shutdown, which must make the agent stop; the
// agent then calls stop with leave set.
func startCluster(ctx context.Context, o agentOptions, dir string, log *slog.Logger, e *env, shutdown func()) (*agentCluster, error) {
	if err := undoSetAside(dir, log); err != nil {
		return nil, err
	}
	movesCtx, stopMoves := context.WithCancel(ctx)
	a := &agentCluster{o: o, dir: dir, log: log, e: e, left: newLeaveOutcome(), worlds: newWorldRef(),
		oneShot: isOneShot(o, dir), moves: newMoveQueue(), stopMoves: stopMoves, movesDone: make(chan struct{})}
	a.shutdown = func() {
		stopMoves()
		shutdown()
	}
	fail := func(err error) (*agentCluster, error) {
		stopMoves()
		a.api.close()
		return nil, err
	}
	var key clusterKey
	if a.oneShot {
		tok, err := clusterkey.Generate()
		if err != nil {
			return fail(err)
		}
		key = clusterKey{tok: tok}
		log.Info("a one-shot run (--converged-exit) with no cluster flags: this node runs a cluster of its own, " +
			"in memory and on loopback unless told otherwise; nothing of it is kept")
	} else {
		if err := checkNodeID(dir, o.hostname); err != nil {
			return fail(err)
		}
		if err := lookFirst(ctx, o, dir, log); err != nil {
			return fail(err)
		}
		var err error
		if key, err = loadClusterKey(o.clusterOptions, dir, o.hostname); err != nil {
			return fail(err)
		}
	}
	seeds, err := a.discoverSeeds(ctx, key)
	if err != nil {
		return fail(err)
	}
	side, err := a.startSide(key, seeds)
	if err != nil {
		if a.disc != nil {
			a.disc.stop()
		}
		return fail(err)
	}
	a.side = side
	a.followDiscovery()
	go func() {
		defer close(a.movesDone)
		a.moves.serve(movesCtx, a.restart)
	}()
	return a, nil
}

// isOneShot reports whether the run needs no lasting cluster: a run that
// exits once converged, told neither to join, to bootstrap with others,
// nor a key, on a data dir that holds no cluster (no key, no raft state).
func isOneShot(o agentOptions, dir string) bool {
	if !o.convergedExit || len(o.join) > 0 || o.bootstrapExpect > 0 || o.token != nil {
		return false
	}
	for _, name := range []string{tokenFile, "raft"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// startSide starts a cluster server with key, joining seeds, and the World
// and the local API on it: the agent's next side. A key adopted (see
// loadClusterKey and restart) is never put back, even if the side fails
// to start: a server may have run under it.
func (a *agentCluster) startSide(key clusterKey, seeds []string) (_ *clusterSide, err error) {
	o, log := a.o, a.log
	a.gens++
	gen := a.gens
	switch {
	case key.replaced != "":
		log.Warn("this node never had a peer: it adopts the key given, and the data dir's old key is kept beside it",
			"fingerprint", key.tok.Fingerprint(), "old_fingerprint", key.previous.Fingerprint(), "old_key_file", key.replaced)
	case key.path == "":
		log.Info("cluster key", "fingerprint", key.tok.Fingerprint(), "in_memory", true)
	default:
		log.Info("cluster key", "fingerprint", key.tok.Fingerprint(), "file", key.path, "new", key.created)
	}
	cfg := a.serverConfig(key.tok, seeds, gen)
	srv, err := cluster.StartServer(cfg, cluster.ServerDeps{})
	if err != nil {
		if key.created {
			// No cluster was made with it: the next start makes another
			// and shows the join command then.
			os.Remove(key.path)
		}
		return nil, startError(err)
	}
	if a.e.serverStarted != nil {
		a.e.serverStarted(srv)
	}
	side := &clusterSide{srv: srv, key: key, seeds: seeds, gen: gen}
	defer func() {
		if err != nil {
			side.stop()
		}
	}()
	side.stops = append(side.stops, func() {
		if err := srv.Close(); err != nil {
			log.Error("closing the cluster server", "err", err)
		}
	})
	node := srv.Node()
	log.Info("cluster server started", "node", node.ID(), "cluster_addr", node.Addr(), "gossip_addr", srv.GossipAddr(),
		"cluster_name", o.clusterName, "voters", o.voters, "bootstrap_expect", o.bootstrapExpect, "join", seeds)
	if o.advertiseAddr == "" {
		checkAdvertised(node.Addr(), srv.GossipAddr(), log)
	}
	if key.created && srv.BootstrappedAlone() {
		showJoinCommand(a.e.stderr, log, o.logFormat, o.clusterOptions, srv.GossipAddr(), key.tok, key.path)
	}
	side.stops = append(side.stops,
		goRun(func(ctx context.Context) error { node.LogLeadership(ctx, log); return nil }, nil),
		goRun(func(ctx context.Context) error { node.LogCaughtUp(ctx, log); return nil }, nil),
		goRun(func(ctx context.Context) error { a.stopIfDamaged(ctx, node); return nil }, nil))
	if len(seeds) > 0 {
		side.stops = append(side.stops, goRun(func(ctx context.Context) error {
			checkJoined(ctx, srv, seeds, key.tok, joinCheckAfter, log)
			return nil
		}, nil))
	}
	if err := a.serveAPI(side); err != nil {
		return nil, err
	}
	return side, nil
}

// serverConfig is the configuration of the cluster server of side gen:
// the options', with key and seeds. A one-shot run keeps raft's state in
// memory and, unless an address flag says otherwise, binds loopback ports
// the system picks.
func (a *agentCluster) serverConfig(key clusterkey.Token, seeds []string, gen uint64) cluster.ServerConfig {
	cfg := a.o.serverConfig(a.dir, key, a.log)
	cfg.Join = seeds
	cfg.OnOtherCluster = a.otherCluster(gen, seeds)
	if a.oneShot {
		cfg.Raft.InMemory, cfg.Raft.DataDir = true, ""
		if !a.o.addrsSet {
			cfg.Raft.BindAddr, cfg.GossipBind = "127.0.0.1:0", "127.0.0.1:0"
		}
	}
	if a.e.tune != nil {
		a.e.tune(&cfg)
	}
	return cfg
}

// serveAPI starts the World and the local API on the side's server. The
// World is the engine's (a.worlds) until the side stops; the engine's
// calls made while no side runs wait for the next one.
func (a *agentCluster) serveAPI(side *clusterSide) error {
	node, log := side.srv.Node(), a.log
	w, err := world.New(node, a.o.hostname, log.With("component", "world"))
	if err != nil {
		return err
	}
	apiSrv, err := apiserver.NewServer(apiserver.Config{Store: w, Deploys: w, Semaphores: w, MaxSemaRequests: a.o.apiMaxLocks, Status: node.Status, Node: node, Host: a.o.hostname, Version: version(),
		Cluster: side.srv, Join: a.join(side), OwnKey: func(key string) bool {
			tok, err := clusterkey.Parse(key)
			return err == nil && tok.Equal(side.key.tok)
		}, KeyFingerprint: side.key.tok.Fingerprint(), Leave: func(ctx context.Context) error {
			a.shutdown()
			return a.left.wait(ctx)
		}, Resources: a.eng.resources, Graph: a.eng.graph, Logger: log.With("component", "api")})
	if err != nil {
		return err
	}
	lns, err := a.api.serve(a.dir, a.o.apiAddr, apiSrv, log.With("component", "api"))
	if err != nil {
		return err
	}
	side.stops = append(side.stops, func() { a.api.stopServing(apiSrv) })
	attrs := []any{"socket", lns[0].Addr().String()}
	if len(lns) > 1 {
		attrs = append(attrs, "address", lns[1].Addr().String())
	}
	log.Info("local API listening", attrs...)
	// The engine and the graph sources use the World of whichever side
	// runs; while none does, their calls wait for the next.
	a.worlds.set(w, side.srv.Members)
	a.serving.Store(side.srv)
	side.stops = append(side.stops, func() { a.worlds.set(nil, nil); a.serving.Store(nil) },
		goRun(func(ctx context.Context) error { releaseStale(ctx, w, log); return nil }, nil))
	return nil
}

// Releasing what an earlier process of this host left in the cluster (see
// world.ReleaseStale) waits this long for a leader, then is tried again
// after staleRetry.
const (
	staleWait  = time.Minute
	staleRetry = 10 * time.Second
)

// releaseStale gives back the semaphore slots and queue places of this
// host that nothing in this process owns (see world.ReleaseStale): at
// once, for those an earlier process that crashed and was restarted
// before the cluster declared it dead left held, and again whenever this
// process fails to give one back. It tries until it can, until ctx ends.
func releaseStale(ctx context.Context, w *world.World, log *slog.Logger) {
	for {
		sweepStale(ctx, w, log)
		select {
		case <-ctx.Done():
			return
		case <-w.Orphaned():
		}
	}
}

// sweepStale calls ReleaseStale until it succeeds or ctx ends.
func sweepStale(ctx context.Context, w *world.World, log *slog.Logger) {
	for {
		wctx, cancel := context.WithTimeout(ctx, staleWait)
		_, err := w.ReleaseStale(wctx) // the World logs each slot it releases
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("could not give back semaphore slots this host no longer uses; trying again",
			"err", err, "retry_in", staleRetry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(staleRetry):
		}
	}
}

// stopIfDamaged stops the agent, failing with the damage, if node finds
// its raft state damaged while it runs (raftnode.ErrDamagedState: the
// error names the file and how to recover), until ctx ends.
func (a *agentCluster) stopIfDamaged(ctx context.Context, node *raftnode.Node) {
	select {
	case <-ctx.Done():
	case <-node.Damaged():
		a.fail(node.DamageErr())
		a.shutdown()
	}
}

// failure is why a restart of the cluster side failed, or the damage its
// node found while it ran, if either happened: the agent stopped because
// of it.
func (a *agentCluster) failure() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.err
}

// fail records why a restart of the cluster side failed.
func (a *agentCluster) fail(err error) {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	a.err = err
}

// stop stops what startCluster started, in the reverse order. A restart
// of the cluster side under way stops at its next step, and is waited for
// until hard closes (a second interrupt). With leave set, the server then
// leaves the cluster gracefully: for at most leaveTimeout, and no longer
// once hard is closed.
func (a *agentCluster) stop(leave bool, hard <-chan struct{}) {
	defer a.api.close() // after the side's API server has stopped
	if a.disc != nil {
		defer a.disc.stop() // after the server: a join under way returns once it is closed
	}
	a.stopMoves()
	if a.moves.makingOne() {
		a.log.Info("stopping: waiting for the restart of its cluster side, under way, to stop at its next step " +
			"(a second interrupt stops the agent without waiting)")
	}
	select {
	case <-a.movesDone:
	case <-hard:
		if a.moves.busy() { // a restart under way, or taken and about to begin
			a.log.Warn("second interrupt: not waiting for the restart of the cluster side")
			a.left.set(errors.New("a second interrupt stopped the agent while its cluster side restarted: " +
				"it did not leave its cluster"))
			return
		}
		<-a.movesDone // returns at once: no restart runs
	}
	a.mu.Lock()
	side := a.side
	a.mu.Unlock()
	failure := a.failure()
	switch {
	case side == nil && failure == nil:
		a.left.set(errors.New("the agent stopped while its cluster side restarted: it did not leave its cluster"))
		return
	case side == nil:
		a.left.set(fmt.Errorf("the agent stopped without leaving its cluster: %w", failure))
		return
	case leave:
		a.left.set(a.leave(side.srv, hard))
	default:
		a.left.set(errStoppedWithoutLeaving)
	}
	side.stop()
}

// discoverSeeds runs discovery when it is on (see startDiscovery) and
// returns the seeds to join: --join's, or those the forming decision
// names (none: this node bootstraps).
func (a *agentCluster) discoverSeeds(ctx context.Context, key clusterKey) ([]string, error) {
	if !a.o.discover || a.oneShot {
		return a.o.join, nil
	}
	var seeds []string
	var err error
	a.disc, seeds, err = startDiscovery(ctx, a.o, a.dir, key, a.log)
	return seeds, err
}

// followDiscovery keeps discovery following the current server (see
// agentDiscovery.follow) until the agent stops.
func (a *agentCluster) followDiscovery() {
	if a.disc == nil {
		return
	}
	stopFollow := goRun(func(ctx context.Context) error { a.disc.follow(ctx, a.currentServer); return nil }, nil)
	a.disc.stop = chain(stopFollow, a.disc.stop)
}

// currentServer returns the running cluster server, or nil while its side
// restarts (or is stopped).
func (a *agentCluster) currentServer() *cluster.Server {
	if !a.mu.TryLock() {
		return nil
	}
	defer a.mu.Unlock()
	if a.side == nil {
		return nil
	}
	return a.side.srv
}

// leave leaves the cluster (see cluster.Server.Leave), giving up after
// leaveTimeout or when hard closes, and returns why it could not leave
// gracefully, if it could not.
func (a *agentCluster) leave(srv *cluster.Server, hard <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Leave(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-hard:
		a.log.Warn("second interrupt: giving up leaving the cluster")
		cancel()
		// Leave returns soon once its context ends; the server must not
		// be closed before it does (see cluster.Server.Leave).
		<-done
		return errors.New("a second interrupt stopped the leave")
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		a.log.Warn("leaving the cluster took too long: stopping anyway; this node keeps its raft seat until the leader removes it",
			"timeout", leaveTimeout, "err", err)
		return fmt.Errorf("leaving took longer than %v: %w", leaveTimeout, err)
	default:
		a.log.Warn("could not leave the cluster gracefully: stopping anyway; this node keeps its raft seat until the leader can remove it",
			"err", err)
		return err
	}
}
