package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/graftcm/graft/bench/loadgen"
)

// engineRound runs every engine workload once on each system, the order
// alternating by round.
func (b *bench) engineRound(ctx context.Context, r int) error {
	peer := ""
	if b.c.mgmtBin != "" {
		peer = "mgmt"
	}
	var graphs []graphSpec
	for _, n := range b.c.noops {
		for _, shape := range b.c.shapes {
			graphs = append(graphs, graphSpec{shape: shape, n: n})
		}
	}
	if b.c.bigChain > 0 {
		graphs = append(graphs, graphSpec{shape: "chain", n: b.c.bigChain})
	}
	for _, n := range b.c.files {
		graphs = append(graphs, graphSpec{shape: "files", n: n})
	}
	for _, g := range graphs {
		for _, sys := range order(r, peer) {
			if err := b.converge(ctx, sys, g); err != nil {
				return err
			}
		}
	}
	sd, err := b.scratch("swap")
	if err != nil {
		return err
	}
	b.log.Info("workload", "system", "graft", "workload", "swap and drift", "noops", b.c.swapNoops)
	got, err := graftSwapDrift(ctx, b.c.graftBin, sd, b.c.swapNoops, b.c.swaps, b.c.drifts)
	if err != nil {
		return err
	}
	// Each agent run gives several samples: their median is the round's.
	b.res.add("engine", fmt.Sprintf("one-resource swap in %s noops", count(b.c.swapNoops)), "ms", lower, "graft", medianMS(got.swaps))
	b.res.add("engine", fmt.Sprintf("drift to repair (a deleted file, %s-noop graph)", count(b.c.swapNoops)), "ms", lower, "graft", medianMS(got.drifts))
	return nil
}

// converge runs graph g to convergence on sys once.
func (b *bench) converge(ctx context.Context, sys string, g graphSpec) error {
	dir, err := b.scratch(sys, "graph")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "graph.yaml")
	if err := g.write(file, filepath.Join(dir, "files")); err != nil {
		return err
	}
	b.log.Info("workload", "system", sys, "workload", g.name())
	var run convergeRun
	if sys == "mgmt" {
		run, err = mgmtConverge(ctx, b.c.mgmtBin, file)
	} else {
		run, err = graftConverge(ctx, b.c.graftBin, file, filepath.Join(dir, "data"))
	}
	if err != nil {
		return err
	}
	b.res.add("engine", g.name()+", start to converged", "ms", lower, sys, loadgen.MS(run.converged))
	b.res.add("engine", g.name()+", CPU (user+sys, to exit)", "ms", lower, sys, loadgen.MS(run.cpu))
	b.res.add("engine", g.name()+", peak RSS", "MiB", lower, sys, run.rssMiB)
	return nil
}

// medianMS is the median of ds in milliseconds.
func medianMS(ds []time.Duration) float64 {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = loadgen.MS(d)
	}
	s := &Stat{Runs: v}
	r := results{figs: []*Figure{{Systems: map[string]*Stat{"x": s}}}}
	r.finish()
	return s.Median
}

// worldRound runs every World workload once on each system.
func (b *bench) worldRound(ctx context.Context, r int) error {
	peer := ""
	if b.c.etcdBin != "" {
		peer = "etcd"
	}
	for _, sys := range order(r, peer) {
		if err := b.cluster(ctx, sys); err != nil {
			return err
		}
	}
	for _, sys := range order(r, peer) {
		dir, err := b.scratch(sys, "solo")
		if err != nil {
			return err
		}
		b.log.Info("workload", "system", sys, "workload", "start to first write")
		var took time.Duration
		if sys == "etcd" {
			took, err = etcdStartToWrite(ctx, b.helper, b.c.etcdBin, dir)
		} else {
			took, err = graftStartToWrite(ctx, b.c.graftBin, dir)
		}
		if err != nil {
			return err
		}
		b.res.add("world", "start one node to first write", "ms", lower, sys, loadgen.MS(took))
	}
	return nil
}

// cluster starts sys's three-node cluster, runs the loads on it, reads
// its nodes' peak RSS, then kills its leader and times the first write.
func (b *bench) cluster(ctx context.Context, sys string) error {
	dir, err := b.scratch(sys, "cluster")
	if err != nil {
		return err
	}
	b.log.Info("workload", "system", sys, "workload", "three-node cluster")
	var w worldSystem
	if sys == "etcd" {
		w, err = newEtcdWorld(ctx, b.c.etcdBin, b.helper, dir)
	} else {
		w, err = newGraftWorld(ctx, b.c.graftBin, dir)
	}
	if err != nil {
		return err
	}
	defer w.stop()
	// A cluster just formed is still settling (the first writes are
	// slower on both systems): a warm-up load first, not recorded. The
	// loads that follow fail if the cluster does not work.
	all := []int{0, 1, 2}
	if _, err := w.load(ctx, "put", all, 16, max(b.c.loadDur/3, time.Second)); ctx.Err() != nil {
		return err
	}
	leader, err := w.leader(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", sys, err)
	}
	loads := []worldLoad{
		{"1 client to the leader", []int{leader}, 1},
		{"1 client to a follower", []int{(leader + 1) % 3}, 1},
	}
	for _, n := range b.c.clients {
		loads = append(loads, worldLoad{label(n), all, n})
	}
	for _, l := range loads {
		res, err := w.load(ctx, "put", l.targets, l.clients, b.c.loadDur)
		if err != nil {
			return fmt.Errorf("%s, %s writing: %w", sys, l.name, err)
		}
		name := "3 nodes, writes, " + l.name
		b.res.add("world", name, "writes/s", higher, sys, res.Rate)
		b.res.add("world", name+", p50", "ms", lower, sys, res.P50ms)
		b.res.add("world", name+", p99", "ms", lower, sys, res.P99ms)
	}
	res, err := w.load(ctx, "lget", all, b.c.readClients, b.c.loadDur)
	if err != nil {
		return fmt.Errorf("%s, linearizable reads: %w", sys, err)
	}
	b.res.add("world", "3 nodes, linearizable reads, "+label(b.c.readClients), "reads/s", higher, sys, res.Rate)
	b.res.add("world", "3 nodes, peak RSS of a node after the loads (the largest)", "MiB", lower, sys, w.peakRSS())
	took, err := w.leaderKill(ctx)
	if err != nil {
		return fmt.Errorf("%s, leader kill: %w", sys, err)
	}
	b.res.add("world", "3 nodes, leader SIGKILL to first write", "ms", lower, sys, loadgen.MS(took))
	return nil
}

// worldLoad is one write load: clients spread over the nodes numbered
// targets.
type worldLoad struct {
	name    string
	targets []int
	clients int
}

// worldSystem is a running three-node cluster of one system.
type worldSystem interface {
	// load runs op ("put" or "lget") from clients clients spread over
	// the nodes numbered targets (0 to 2).
	load(ctx context.Context, op string, targets []int, clients int, dur time.Duration) (loadgen.Result, error)
	// leader is the number of the node that leads.
	leader(ctx context.Context) (int, error)
	peakRSS() float64
	leaderKill(ctx context.Context) (time.Duration, error)
	stop()
}

type graftWorld struct{ nodes []*graftNode }

func newGraftWorld(ctx context.Context, bin, dir string) (*graftWorld, error) {
	nodes, err := startGraftCluster(ctx, bin, dir, 3)
	return &graftWorld{nodes: nodes}, err
}

func (g *graftWorld) load(ctx context.Context, op string, targets []int, clients int, dur time.Duration) (loadgen.Result, error) {
	nodes := pick(g.nodes, targets)
	if op == "lget" {
		return graftLinReads(ctx, nodes, clients, dur)
	}
	return graftPuts(ctx, nodes, clients, dur)
}

func (g *graftWorld) leader(ctx context.Context) (int, error) { return graftLeader(ctx, g.nodes) }

func (g *graftWorld) peakRSS() float64 {
	var m float64
	for _, n := range g.nodes {
		m = max(m, n.p.peakRSSMiB())
	}
	return m
}

func (g *graftWorld) leaderKill(ctx context.Context) (time.Duration, error) {
	return graftLeaderKill(ctx, g.nodes)
}

func (g *graftWorld) stop() { stopGraft(g.nodes) }

type etcdWorld struct {
	members []*etcdMember
	helper  string
}

func newEtcdWorld(ctx context.Context, bin, helper, dir string) (*etcdWorld, error) {
	ms, err := startEtcdCluster(ctx, bin, dir, 3)
	return &etcdWorld{members: ms, helper: helper}, err
}

func (e *etcdWorld) load(ctx context.Context, op string, targets []int, clients int, dur time.Duration) (loadgen.Result, error) {
	return etcdLoad(ctx, e.helper, pick(e.members, targets), op, clients, dur)
}

func (e *etcdWorld) leader(ctx context.Context) (int, error) {
	l, err := etcdLeader(ctx, e.members)
	return slices.Index(e.members, l), err
}

func (e *etcdWorld) peakRSS() float64 {
	var m float64
	for _, mb := range e.members {
		m = max(m, mb.p.peakRSSMiB())
	}
	return m
}

func (e *etcdWorld) leaderKill(ctx context.Context) (time.Duration, error) {
	return etcdLeaderKill(ctx, e.helper, e.members)
}

func (e *etcdWorld) stop() { stopEtcd(e.members) }

// pick returns the elements of s at the indexes.
func pick[T any](s []T, indexes []int) []T {
	out := make([]T, len(indexes))
	for i, x := range indexes {
		out[i] = s[x]
	}
	return out
}
