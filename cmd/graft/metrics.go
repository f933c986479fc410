package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/metrics"
	"github.com/graftcm/graft/world"
)

func metricsFlag() cli.Flag {
	return &cli.StringFlag{Name: "metrics", EnvVars: []string{"GRAFT_METRICS"},
		Usage: "serve Prometheus metrics at http://`HOST:PORT`/metrics (off by default; no authentication, " +
			"so listen where only your monitoring reaches; port 0 picks a free one, logged)"}
}

// parseMetricsAddr checks --metrics: empty (off) or HOST:PORT.
func parseMetricsAddr(c *cli.Context) (string, error) {
	addr := c.String("metrics")
	if addr == "" {
		if c.IsSet("metrics") {
			return "", usageError("--metrics is empty: give HOST:PORT, or leave the flag out")
		}
		return "", nil
	}
	if _, err := hostPort("--metrics", addr); err != nil {
		return "", err
	}
	return addr, nil
}

// agentMetrics is the agent's metrics endpoint (--metrics): its collector
// and the listener it serves on, opened before the agent starts so that a
// port in use fails the run at once.
type agentMetrics struct {
	c   *metrics.Collector
	ln  net.Listener
	log *slog.Logger
}

// openMetrics listens on addr and makes the agent's collector. With
// bridge, raft's and memberlist's go-metrics go to it as well: go-metrics
// is process-wide, so only the process's own agent (main's, never the
// tests' in-process ones) bridges it, once.
func openMetrics(addr string, bridge bool, log *slog.Logger) (*agentMetrics, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	m := &agentMetrics{c: metrics.New(), ln: ln, log: log.With("component", "metrics")}
	if bridge {
		if err := m.c.BridgeGoMetrics(); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return m, nil
}

// close closes the listener of metrics never served.
func (m *agentMetrics) close() {
	if m != nil {
		m.ln.Close()
	}
}

// serve serves the metrics, the cluster series read from cl's current
// side, until the returned function is called. Nothing on a nil
// agentMetrics.
func (m *agentMetrics) serve(cl *agentCluster) (stop func()) {
	if m == nil {
		return func() {}
	}
	m.c.SetCluster(cl.metricsView)
	stop = goRun(func(ctx context.Context) error { return m.c.Serve(ctx, m.ln, m.log) },
		func(err error) { m.log.Error("metrics server stopped", "err", err) })
	m.log.Info("metrics listening", "address", m.ln.Addr().String())
	return stop
}

// onConverged passes the engine's converged state to the metrics, then to
// next.
func (m *agentMetrics) onConverged(next func(engine.Status)) func(engine.Status) {
	if m == nil {
		return next
	}
	return func(s engine.Status) {
		m.c.SetConverged(s.Converged)
		next(s)
	}
}

// observe makes the engine of cfg report its CheckApply calls to the
// metrics, and the metrics read the resources by state from eng at each
// scrape. Nothing on a nil agentMetrics.
func (m *agentMetrics) observe(cfg *engine.Config, eng *engineRef) {
	if m == nil {
		return
	}
	addObserver(cfg, checkApplyMetrics{m.c})
	m.c.SetResourceSource(func() map[string]int {
		c := eng.counts()
		return map[string]int{"ok": c.OK, "dirty": c.Dirty, "running": c.Running, "waiting": c.Waiting, "failed": c.Failed}
	})
	global := cfg.Sema > 0
	m.c.SetSemaphoreSource(func() map[string]metrics.SemaphoreUse { return semaphoreUse(eng.snapshot(), global) })
}

// globalSemaID names the host-wide limit of --sema in the semaphore
// series: no meta sema tag starts with "--".
const globalSemaID = "--sema"

// semaphoreUse counts the resources of snap holding and waiting for each
// semaphore, by id (a tag's count is not part of it). With global (--sema)
// every running resource holds a slot of the host-wide limit, and one
// waiting for semaphores with none of its own named waits for that.
func semaphoreUse(snap engine.Snapshot, global bool) map[string]metrics.SemaphoreUse {
	use := map[string]metrics.SemaphoreUse{}
	add := func(tag string, held bool) {
		id, _, err := engine.ParseSema(tag)
		if err != nil {
			id = tag // the engine refuses such a graph; count it as written
		}
		u := use[id]
		if held {
			u.Holders++
		} else {
			u.Waiters++
		}
		use[id] = u
	}
	for _, r := range snap.Resources {
		for _, tag := range r.SemaHeld {
			add(tag, true)
		}
		for _, tag := range r.SemaWaiting {
			add(tag, false)
		}
		switch {
		case !global:
		case r.State == engine.StateRunning:
			add(globalSemaID, true)
		case r.State == engine.StateWaiting && r.Waiting == engine.WaitSemaphores && len(r.SemaWaiting) == 0:
			add(globalSemaID, false)
		}
	}
	return use
}

// checkApplyMetrics passes the engine's CheckApply calls and graph swaps
// to the metrics:
// a run with apply off (noop) that found something to change counts as
// unchanged, since it changed nothing.
type checkApplyMetrics struct{ c *metrics.Collector }

func (m checkApplyMetrics) CheckApplyDone(ev engine.ApplyEvent) {
	m.c.ObserveCheckApply(ev.ID.Kind, ev.Duration, ev.Changed && !ev.Noop, ev.Err)
}

func (m checkApplyMetrics) GraphSwapped(ev engine.SwapEvent) { m.c.ObserveGraphSwap(ev.Duration) }

// metricsView is the current side's cluster, for the metrics; false while
// no side runs.
func (a *agentCluster) metricsView() (metrics.ClusterView, bool) {
	srv := a.serving.Load()
	if srv == nil {
		return metrics.ClusterView{}, false
	}
	v := clusterView(srv)
	w, _ := a.worlds.Current()
	addWatchStats(&v, w)
	return v, true
}

func clusterView(srv *cluster.Server) metrics.ClusterView {
	st := srv.Node().Status()
	v := metrics.ClusterView{RaftState: st.State, Term: st.Term, LastIndex: st.LastIndex, CommitIndex: st.CommitIndex,
		AppliedIndex: st.AppliedIndex, Revision: st.Revision, Members: map[string]int{}}
	for _, m := range srv.Members() {
		v.Members[m.Gossip]++
	}
	return v
}

// addWatchStats adds the World's watch lag to v.
func addWatchStats(v *metrics.ClusterView, w *world.World) {
	if w == nil {
		return
	}
	st := w.WatchStats()
	v.Watches, v.WatchLagRevisions, v.WatchLag = st.Watches, st.LagRevisions, st.Lag
}
