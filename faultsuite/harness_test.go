package faultsuite

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/internal/faultcheck"
	"github.com/graftcm/graft/world"
)

// leaseTimeout is the Worlds' lease timeout at the test timings: the
// default scaled as the cluster's ReleaseGrace is from production timings
// to these (2 s to 200 ms, a tenth), so that the lease keeps production's
// ratio to ReleaseGrace (2 s to 2 s, 1:1) and a silent holder gives its
// slots up with the margin it has in production (the cluster frees them
// no sooner than twice ReleaseGrace after it last heard from the holder;
// see cluster/plan.go).
func leaseTimeout() time.Duration {
	test, prod := cluster.TestServerConfig().ReleaseGrace, cluster.DefaultServerConfig().ReleaseGrace
	return time.Duration(int64(world.DefaultLeaseTimeout) * int64(test) / int64(prod))
}

// node is one server of a schedule's cluster and the World on it.
type node struct {
	slot *clustertest.Slot

	mu        sync.Mutex
	w         *world.World // nil while down
	log       *faultcheck.WatchLog
	stopWatch context.CancelFunc
}

// watchLog returns what the node's current watcher recorded.
func (n *node) watchLog() *faultcheck.WatchLog {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log
}

// stopWatching ends the node's current watcher.
func (n *node) stopWatching() {
	n.mu.Lock()
	stop := n.stopWatch
	n.stopWatch = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// current returns the node's World, nil while it is down.
func (n *node) current() *world.World {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.w
}

// harness is a three-server cluster with a World and a watcher on each
// server, recording into rec.
type harness struct {
	t     *testing.T
	f     *clustertest.Fleet
	nodes []*node
	rec   *recorder
	ctx   context.Context // the schedule's: watchers end with it
}

// newHarness starts three servers, at the test timings (raft snapshots
// every 64 entries, so lagging followers install snapshots and their
// watchers resync), that form one cluster of three voters.
func newHarness(ctx context.Context, t *testing.T, rec *recorder) *harness {
	t.Helper()
	h := &harness{t: t, f: clustertest.NewFleet(t, 3, nil), rec: rec, ctx: ctx}
	seed := h.f.Slots[0]
	h.f.Start(seed, nil)
	for _, s := range h.f.Slots[1:] {
		h.f.Start(s, func(c *cluster.ServerConfig) { c.Join = []string{seed.GossipAddr()} })
	}
	for _, s := range h.f.Slots {
		h.nodes = append(h.nodes, &node{slot: s})
	}
	if err := h.waitHealthy(); err != nil {
		t.Fatalf("forming the cluster: %v", err)
	}
	for _, n := range h.nodes {
		h.up(n)
	}
	return h
}

// waitFor polls cond every 10 ms (of the bubble's fake time) for up to d.
func waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// waitHealthy waits for every server to run, in one partition, with a
// leader that has all three as voters.
func (h *harness) waitHealthy() error {
	return waitFor(time.Minute, "three voters and a leader", func() bool {
		ctx, cancel := context.WithTimeout(h.ctx, 50*time.Millisecond)
		defer cancel()
		l, err := h.f.Leader(ctx)
		if err != nil {
			return false
		}
		servers, err := l.Server().Node().Configuration()
		if err != nil || len(servers) != len(h.nodes) {
			return false
		}
		for _, s := range servers {
			if s.Suffrage != raft.Voter {
				return false
			}
		}
		return !slices.ContainsFunc(h.nodes, func(n *node) bool { return n.slot.Server() == nil })
	})
}

// leader returns the node that leads, nil if none does now.
func (h *harness) leader() *node {
	for _, n := range h.nodes {
		if srv := n.slot.Server(); srv != nil && srv.Node().IsLeader() {
			return n
		}
	}
	return nil
}

// up gives a started server its World and watcher, once its state has
// caught up with the cluster enough to name a revision to watch from.
func (h *harness) up(n *node) {
	w, err := world.New(n.slot.Server().Node(), n.slot.ID, nil, world.WithLeaseTimeout(leaseTimeout()))
	if err != nil {
		h.t.Fatal(err)
	}
	f := n.slot.FSM()
	if err := waitFor(time.Minute, n.slot.ID+"'s state", func() bool { return f.Rev() > 0 }); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	log := h.rec.watch(ctx, w, n.slot.ID, f.Rev())
	n.mu.Lock()
	n.w, n.log, n.stopWatch = w, log, cancel
	n.mu.Unlock()
}

// kill crashes a node's server: its watcher ends, its clients wait.
func (h *harness) kill(n *node) {
	n.stopWatching()
	n.mu.Lock()
	n.w = nil
	n.mu.Unlock()
	h.f.Kill(n.slot)
}

// restart starts a killed node's server again on its stores, joining the
// others.
func (h *harness) restart(n *node) {
	h.startAgain(n)
	h.up(n)
}

// startAgain starts a killed node's server on its stores, joining the
// others; up gives it its World.
func (h *harness) startAgain(n *node) {
	var seeds []string
	for _, o := range h.nodes {
		if o != n {
			seeds = append(seeds, o.slot.GossipAddr())
		}
	}
	h.f.Restart(n.slot, func(c *cluster.ServerConfig) { c.Join = seeds })
}

// committed replays the log, up to what the leader's state machine has
// applied, into a fresh state machine that keeps every event: the changes
// the cluster committed, in revision order, and the last revision. The
// log is every entry any node's store was given (compacted or not), the
// one of the highest term at each index: a committed entry's, since every
// leader of a later term has it at that index, while an entry that lost
// to it has a lower term.
func committed(nodes []*node, leader *node) ([]faultcheck.Change, uint64, error) {
	byIndex := map[uint64]raft.Log{}
	for _, n := range nodes {
		for _, l := range n.slot.Log() {
			if have, ok := byIndex[l.Index]; !ok || l.Term > have.Term {
				byIndex[l.Index] = l
			}
		}
	}
	applied := leader.slot.FSM().Applied()
	f := fsm.New(fsm.Options{History: math.MaxInt32})
	for i := uint64(1); i <= applied; i++ {
		l, ok := byIndex[i]
		if !ok {
			return nil, 0, fmt.Errorf("no node's store was given log entry %d", i)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if _, err := f.ApplyEntry(l.Index, l.Term, l.Data, nil); err != nil {
			return nil, 0, fmt.Errorf("replaying entry %d: %w", l.Index, err)
		}
	}
	evs, _, err := f.Events(0, "", 0)
	if err != nil {
		return nil, 0, err
	}
	out := make([]faultcheck.Change, len(evs))
	for i, e := range evs {
		out[i] = change(e)
	}
	return out, f.Rev(), nil
}

func change(e fsm.Event) faultcheck.Change {
	return faultcheck.Change{Rev: e.KV.ModRev, Key: e.KV.Key, Value: string(e.KV.Value), Deleted: e.Type == fsm.EventDelete}
}

// keys returns the keys under prefix in a node's state machine.
func keys(f *fsm.FSM, prefix string) map[string]faultcheck.KV {
	kvs, _ := f.List(prefix, 0)
	out := make(map[string]faultcheck.KV, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = faultcheck.KV{Value: string(kv.Value), ModRev: kv.ModRev}
	}
	return out
}
