package engine_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

// semaWorlds starts a cluster of three in-memory nodes and returns a World
// per node, named after its node (node0, node1, node2).
func semaWorlds(t *testing.T) (*clustertest.Cluster, []*world.World) {
	t.Helper()
	return worldtest.New(t, 3)
}

// waitFor lets fake time pass until cond holds, failing after a minute of
// it, and returns how long it took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > time.Minute {
			t.Fatalf("%s: not within a minute", what)
		}
		<-time.After(10 * time.Millisecond)
	}
	return time.Since(t0)
}

// semaState is semaphore id's state in m's copy of the cluster's.
func semaState(m *clustertest.Member, id string) fsm.SemaState {
	st, _ := m.FSM().Sema(id)
	return st
}

// hasSlot reports whether node holds (or, with waiting, waits for) a slot
// in st.
func hasSlot(st fsm.SemaState, node string, waiting bool) bool {
	slots := st.Holders
	if waiting {
		slots = st.Waiters
	}
	return slices.ContainsFunc(slots, func(s fsm.Slot) bool { return s.Node == node })
}

// slotLog records the order in which the engine asks for cluster slots.
type slotLog struct {
	cs engine.ClusterSemaphores
	mu sync.Mutex
	id []string
}

func (l *slotLog) AcquireSlot(ctx context.Context, id string, count int64) (uint64, <-chan struct{}, func(context.Context) error, error) {
	l.mu.Lock()
	l.id = append(l.id, id)
	l.mu.Unlock()
	return l.cs.AcquireSlot(ctx, id, count)
}

func (l *slotLog) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.id)
}

// fenced is a fake that records the fencing tokens its runtime shows
// during each CheckApply. With a key it can be grouped.
type fenced struct {
	*fake
	key  string
	mu   sync.Mutex
	seen []map[string]uint64
}

func (f *fenced) GroupKey() string { return f.key }

func (f *fenced) CheckApply(ctx context.Context, apply bool) (bool, error) {
	m := f.rt.Load().Fences()
	f.mu.Lock()
	f.seen = append(f.seen, m)
	f.mu.Unlock()
	return f.fake.CheckApply(ctx, apply)
}

func (f *fenced) fences() []map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// A vertex takes its local semaphores first, then its cluster ones, each in
// sorted order: while it waits for a local one it has asked the cluster
// for nothing, and it asks for @@m before @@z. Its CheckApply sees the
// slots' fencing tokens, each above every earlier holder's.
func TestClusterSemaphoresTakenAfterLocalOnesInSortedOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := semaWorlds(t)
		other, err := ws[1].Acquire(t.Context(), "z", 1) // another host holds @@z
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		h := newFake(rec, "h")
		h.gate = make(chan struct{})
		v := &fenced{fake: newFake(rec, "v")}
		v.hold = make(chan struct{}) // v starts once h holds b
		calls := &slotLog{cs: ws[0]}
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("h"), Res: h, Meta: engine.Meta{Sema: []string{"b"}}},
			{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"@@z", "b", "@@m", "a"}}},
		}), func(cfg *engineConfig) { cfg.ClusterSemaphores = calls })
		waitFor(t, "h running", func() bool { return rec.isRunning("h") })
		close(v.hold)
		<-time.After(time.Second)
		if got := calls.ids(); len(got) > 0 {
			t.Fatalf("v asked the cluster for %v while it waited for its local semaphore b", got)
		}

		close(h.gate)
		waitFor(t, "v waiting for @@z", func() bool { return hasSlot(semaState(c.Members[0], "z"), "node0", true) })
		if !hasSlot(semaState(c.Members[0], "m"), "node0", false) {
			t.Error("v waits for @@z without holding @@m")
		}
		if got := calls.ids(); !slices.Equal(got, []string{"m", "z"}) {
			t.Errorf("v asked for %v, want [m z]", got)
		}
		checks(t, map[*fake]int{v.fake: 0})

		if err := other.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "v ran", func() bool { return v.checks.Load() == 1 })
		seen := v.fences()
		if len(seen) != 1 || !slices.Equal(slices.Sorted(maps.Keys(seen[0])), []string{"m", "z"}) ||
			seen[0]["z"] <= other.Token() || seen[0]["m"] == 0 {
			t.Errorf("fences seen %v, want m and z, z above the last holder's %d", seen, other.Token())
		}
		if f := v.rt.Load().Fences(); f != nil {
			t.Errorf("fences outside CheckApply: %v", f)
		}
		waitFor(t, "v's slots released", func() bool {
			return !hasSlot(semaState(c.Members[0], "m"), "node0", false) && !hasSlot(semaState(c.Members[0], "z"), "node0", false)
		})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A cluster slot goes back to the cluster when the CheckApply ends, however
// it ends, and the next waiter gets it.
func TestClusterSemaphoreReleasedWhenCheckApplyEnds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		result  func(int) (bool, error)
		timeout time.Duration
	}{
		{name: "success"},
		{name: "failure", result: fails},
		{name: "panic", result: func(int) (bool, error) { panic("boom") }},
		{name: "timeout", timeout: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, ws := semaWorlds(t)
				rec := newRecorder()
				v := newFake(rec, "v")
				v.gate, v.ctxAware, v.result = make(chan struct{}), true, tc.result
				r := start(t, graphOfVertices(t, []engine.Vertex{
					{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"@@r"}, Timeout: tc.timeout}},
				}), func(cfg *engineConfig) { cfg.ClusterSemaphores = ws[0] })
				openGate := sync.OnceFunc(func() { close(v.gate) })
				t.Cleanup(openGate) // before the engine's: a failed test must not hang
				waitFor(t, "v holding @@r", func() bool {
					return rec.isRunning("v") && hasSlot(semaState(c.Members[0], "r"), "node0", false)
				})
				next := make(chan error, 1)
				go func() {
					l, err := ws[1].Acquire(t.Context(), "r", 1)
					if err == nil {
						err = l.Release(context.WithoutCancel(t.Context()))
					}
					next <- err
				}()
				<-time.After(100 * time.Millisecond)
				select {
				case err := <-next:
					t.Fatalf("another host got @@r while v held it (%v)", err)
				default:
				}
				if tc.timeout == 0 {
					openGate()
				}
				select {
				case err := <-next:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(time.Minute):
					t.Fatalf("@@r not released after v's CheckApply ended; state %+v", semaState(c.Members[0], "r"))
				}
				checks(t, map[*fake]int{v: 1})
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// A vertex waiting for a cluster slot does not hold up shutdown, and its
// place in the queue is given up.
func TestClusterSemaphoreWaitEndsOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := semaWorlds(t)
		other, err := ws[1].Acquire(t.Context(), "w", 1)
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		v := newFake(rec, "v")
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"local", "@@w"}}},
		}), func(cfg *engineConfig) { cfg.ClusterSemaphores = ws[0] })
		waitFor(t, "v waiting for @@w", func() bool { return hasSlot(semaState(c.Members[0], "w"), "node0", true) })
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		checks(t, map[*fake]int{v: 0})
		waitFor(t, "v's place in the queue given up", func() bool {
			return !hasSlot(semaState(c.Members[0], "w"), "node0", true)
		})
		if err := other.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// A vertex a swap replaces gives up its wait for a cluster slot at once:
// the swap does not wait for the slot's holder elsewhere, the old
// parameters never run, and the replacement waits its turn.
func TestClusterSemaphoreWaitEndsWhenSwapReplacesVertex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := semaWorlds(t)
		other, err := ws[1].Acquire(t.Context(), "x", 1)
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		d := newFake(rec, "d")
		meta := engine.Meta{Sema: []string{"@@x"}}
		r := start(t, graphOfVertices(t, []engine.Vertex{{ID: id("d"), Res: d, Meta: meta}}),
			func(cfg *engineConfig) { cfg.ClusterSemaphores = ws[0] })
		waitFor(t, "d waiting for @@x", func() bool { return hasSlot(semaState(c.Members[0], "x"), "node0", true) })

		d2, added := newFake(rec, "d"), newFake(rec, "added")
		d2.Param = "new"
		r.graphs <- graphOfVertices(t, []engine.Vertex{{ID: id("d"), Res: d2, Meta: meta}, {ID: id("added"), Res: added}})
		waitFor(t, "the swap", func() bool { return d2.inits.Load() == 1 && added.checks.Load() == 1 })
		if !hasSlot(semaState(c.Members[0], "x"), "node1", false) {
			t.Fatal("the holder elsewhere lost @@x")
		}
		if err := other.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "d2 ran", func() bool { return d2.checks.Load() == 1 })
		checks(t, map[*fake]int{d: 0})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A holder whose slot is lost (the cluster declared its host dead, or its
// host lost the quorum) has its CheckApply cancelled, with the loss as the
// cause; the run counts as failed, so retry applies.
func TestClusterSemaphoreLostCancelsCheckApply(t *testing.T) {
	for _, how := range []string{"declared dead", "cut off"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, ws := semaWorlds(t)
				logs := newLogCapture()
				rec := newRecorder()
				v := newFake(rec, "v")
				v.gate, v.ctxAware = make(chan struct{}), true
				r := start(t, graphOfVertices(t, []engine.Vertex{
					{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"@@l"}, Retry: 1}},
				}), func(cfg *engineConfig) {
					cfg.ClusterSemaphores = ws[0]
					cfg.Logger = slogOf(logs)
				})
				openGate := sync.OnceFunc(func() { close(v.gate) })
				t.Cleanup(openGate) // before the engine's: a failed test must not hang
				waitFor(t, "v holding @@l", func() bool { return rec.isRunning("v") })
				<-time.After(3 * world.DefaultLeaseTimeout)
				if !rec.isRunning("v") {
					t.Fatal("v's CheckApply ended while its host was in touch")
				}
				switch how {
				case "declared dead":
					cmd := []fsm.Command{{Op: fsm.OpExpireNode, Node: "node0"}}
					if _, err := c.Members[1].Node().Apply(t.Context(), cmd); err != nil {
						t.Fatal(err)
					}
				case "cut off":
					c.Partition(c.Members[0])
				}
				waitFor(t, "the failure", func() bool { return len(logs.records("resource failed; retrying")) > 0 })
				err := logs.records("resource failed; retrying")[0].attrs["err"]
				if !strings.Contains(err, "cluster semaphore @@l lost: ") {
					t.Errorf("failed with %q, want the slot's loss as the cause", err)
				}
				c.Heal()
				waitFor(t, "the retry", func() bool { return v.checks.Load() == 2 })
				openGate()
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// Grouped vertices hold the union of their cluster semaphores, and every
// member sees the group's fencing tokens.
func TestGroupedVerticesSeeTheGroupsFences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := semaWorlds(t)
		rec := newRecorder()
		a := &fenced{fake: newFake(rec, "a"), key: "k"}
		b := &fenced{fake: newFake(rec, "b"), key: "k"}
		g := engine.AutoGroup(graphOfVertices(t, []engine.Vertex{
			{ID: id("a"), Res: a, Meta: engine.Meta{Sema: []string{"@@g1"}}},
			{ID: id("b"), Res: b, Meta: engine.Meta{Sema: []string{"@@g2:2"}}},
		}))
		if g.Len() != 1 {
			t.Fatalf("%d vertices, want one group", g.Len())
		}
		r := start(t, g, func(cfg *engineConfig) { cfg.ClusterSemaphores = ws[0] })
		waitFor(t, "the group ran", func() bool { return a.checks.Load() == 1 && b.checks.Load() == 1 })
		for _, f := range []*fenced{a, b} {
			seen := f.fences()
			if len(seen) != 1 || !slices.Equal(slices.Sorted(maps.Keys(seen[0])), []string{"g1", "g2"}) {
				t.Errorf("%s saw fences %v, want g1 and g2", f.name, seen)
			}
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A noop check (meta noop, or an engine in noop) changes nothing, so it
// takes no cluster slot: a preview on one host never queues ahead of, or
// holds up, the hosts that apply. It still sees no fencing token.
func TestNoopCheckTakesNoClusterSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := semaWorlds(t)
		other, err := ws[1].Acquire(t.Context(), "db", 1) // another host holds @@db
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = other.Release(context.Background()) }) // a failed test must not leak its guard
		rec := newRecorder()
		v := &fenced{fake: newFake(rec, "v")}
		calls := &slotLog{cs: ws[0]}
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"@@db"}, Noop: true}},
		}), func(cfg *engineConfig) { cfg.ClusterSemaphores = calls })
		waitFor(t, "v checked", func() bool { return v.checks.Load() == 1 })
		if got := calls.ids(); len(got) > 0 {
			t.Errorf("a noop check asked the cluster for %v", got)
		}
		if st := semaState(c.Members[0], "db"); hasSlot(st, "node0", true) || hasSlot(st, "node0", false) {
			t.Errorf("a noop check holds or waits for a slot: %+v", st)
		}
		if seen := v.fences(); len(seen) != 1 || len(seen[0]) != 0 {
			t.Errorf("fences seen %v, want none", seen)
		}
		if err := other.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// Abort cancels a CheckApply running under a cluster slot, and the slot
// still goes back to the cluster: a second interrupt must not leave a
// cluster-wide lock held until this host is declared dead.
func TestClusterSemaphoreReleasedAfterAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := semaWorlds(t)
		rec := newRecorder()
		v := newFake(rec, "v")
		v.gate, v.ctxAware = make(chan struct{}), true
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"@@a"}}},
		}), func(cfg *engineConfig) { cfg.ClusterSemaphores = ws[0] })
		waitFor(t, "v holding @@a", func() bool {
			return rec.isRunning("v") && hasSlot(semaState(c.Members[0], "a"), "node0", false)
		})
		r.eng.Abort()
		if err := r.stop(); !errors.Is(err, engine.ErrAborted) {
			t.Fatalf("Run after Abort: %v, want ErrAborted", err)
		}
		if st := semaState(c.Members[0], "a"); hasSlot(st, "node0", false) {
			t.Errorf("after Abort, node0 still holds @@a: %+v", st)
		}
	})
}

// oneSlot is a cluster with one slot whose loss the test controls.
type oneSlot struct{ lost chan struct{} }

func (o *oneSlot) AcquireSlot(context.Context, string, int64) (uint64, <-chan struct{}, func(context.Context) error, error) {
	return 7, o.lost, func(context.Context) error { return nil }, nil
}

// losesSlot is a fake whose CheckApply succeeds just after its slot is
// lost, before the engine's watch of the slot can cancel it.
type losesSlot struct {
	*fake
	slot *oneSlot
}

func (l *losesSlot) CheckApply(ctx context.Context, apply bool) (bool, error) {
	close(l.slot.lost)
	return l.fake.CheckApply(ctx, apply)
}

// A CheckApply that returns success after its slot was lost fails all the
// same: it did not surely run while this host held the slot.
func TestClusterSemaphoreLostDuringASuccessfulCheckApplyFailsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		slot := &oneSlot{lost: make(chan struct{})}
		v := &losesSlot{fake: newFake(rec, "v"), slot: slot}
		r := start(t, graphOfVertices(t, []engine.Vertex{
			{ID: id("v"), Res: v, Meta: engine.Meta{Sema: []string{"@@x"}}},
		}), func(cfg *engineConfig) { cfg.ClusterSemaphores, cfg.ConvergedTimeout = slot, 0 })
		synctest.Wait()
		if st, ok := r.lastStatus(); !ok || !st.Converged || !slices.Equal(st.Failed, []engine.ID{id("v")}) {
			t.Errorf("status %+v after a CheckApply whose slot was lost, want v failed", st)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
