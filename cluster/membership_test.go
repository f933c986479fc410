package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/fsm"
)

// roles returns the raft configuration as seen by srv: voters and
// non-voters, sorted.
func roles(t *testing.T, srv *cluster.Server) (voters, nonvoters []string) {
	t.Helper()
	servers, err := srv.Node().Configuration()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		} else {
			nonvoters = append(nonvoters, string(s.ID))
		}
	}
	slices.Sort(voters)
	slices.Sort(nonvoters)
	return voters, nonvoters
}

// eventually waits (in fake time) for cond, failing after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-time.After(20 * time.Millisecond)
	}
	return time.Since(t0)
}

func fleetLeader(t *testing.T, f *clustertest.Fleet) *clustertest.Slot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	l, err := f.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func joinTo(seed *clustertest.Slot) func(*cluster.ServerConfig) {
	return func(c *cluster.ServerConfig) { c.Join = []string{seed.GossipAddr()} }
}

// writer applies a write through a node every 50ms until stopped and
// counts failures.
type writer struct {
	mu     sync.Mutex
	ok     int
	failed []error
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(f *clustertest.Fleet, via func() *clustertest.Slot) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			s := via()
			srv := s.Server()
			if srv == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := srv.Node().Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: "w", Value: []byte(fmt.Sprint(i))}})
			cancel()
			w.mu.Lock()
			if err != nil {
				w.failed = append(w.failed, err)
			} else {
				w.ok++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.failed) > 0 || w.ok == 0 {
		t.Errorf("writes: %d ok, %d failed: %v", w.ok, len(w.failed), w.failed)
	}
}

// One node, then four more joining it: five voters; a sixth and seventh
// are non-voters. A voter killed without leaving is declared dead, its
// semaphore slots are released and a non-voter takes its seat, with writes
// working throughout; the leader's death elects another.
func TestGrowAndSurviveNodeLoss(t *testing.T) {
	growAndSurvive(t, nil)
}

// The same with the production timings (raft 1s, LAN gossip, 30s grace,
// 10s stabilization), on the fake clock: the figures it logs are the
// membership logic's latency at those timings, network latency aside.
func TestGrowAndSurviveNodeLossProductionTimings(t *testing.T) {
	cfg := cluster.DefaultServerConfig()
	cfg.GossipBind = "127.0.0.1:0"
	cfg.Raft.BindAddr = "127.0.0.1:0"
	growAndSurvive(t, &cfg)
}

func growAndSurvive(t *testing.T, cfg *cluster.ServerConfig) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 7, cfg)
		s0 := f.Slots[0]
		first := f.Start(s0, nil)
		for _, s := range f.Slots[1:5] {
			f.Start(s, joinTo(s0))
		}
		eventually(t, time.Minute, "five voters", func() bool {
			v, _ := roles(t, first)
			return len(v) == 5
		})
		for _, s := range f.Slots[5:] {
			f.Start(s, joinTo(s0))
		}
		eventually(t, time.Minute, "two non-voters", func() bool {
			_, nv := roles(t, first)
			return len(nv) == 2
		})
		<-time.After(15 * time.Second) // fake time: spares stay spares
		if v, nv := roles(t, first); len(v) != 5 || !slices.Equal(nv, []string{"s5", "s6"}) {
			t.Fatalf("voters %v, non-voters %v", v, nv)
		}
		if id := first.ClusterID(); id == "" {
			t.Error("the cluster has no ID")
		}

		leader := fleetLeader(t, f)
		var victim *clustertest.Slot
		for _, s := range f.Slots[:5] {
			if s != leader {
				victim = s
			}
		}
		// The victim holds a semaphore slot.
		acq := []fsm.Command{{Op: fsm.OpSemaAcquire, Sema: "db", Count: 1, Node: victim.ID, Holder: "h1"}}
		if res, err := victim.Server().Node().Apply(t.Context(), acq); err != nil || !res[0].Granted {
			t.Fatalf("acquire: %v %+v", err, res)
		}
		w := startWriter(f, func() *clustertest.Slot { return leader })
		t0 := time.Now()
		f.Kill(victim)
		var detected, replaced time.Duration
		detected = eventually(t, time.Minute, "the dead node's slot released", func() bool {
			_, held := leader.FSM().Sema("db")
			return !held
		})
		promoted := eventually(t, time.Minute, "a spare promoted to five live voters", func() bool {
			v, _ := roles(t, leader.Server())
			live := slices.DeleteFunc(slices.Clone(v), func(id string) bool { return id == victim.ID })
			return len(live) == 5
		})
		replaced = eventually(t, time.Minute, "five voters without the dead one", func() bool {
			v, _ := roles(t, leader.Server())
			return len(v) == 5 && !slices.Contains(v, victim.ID)
		})
		w.finish(t)
		t.Logf("after the kill: slots released %v, a spare promoted %v later, the dead voter removed %v after that",
			detected, promoted, replaced)
		_ = t0
		eventually(t, time.Minute, "the dead node removed from raft", func() bool {
			v, nv := roles(t, leader.Server())
			return !slices.Contains(append(v, nv...), victim.ID)
		})

		// The removed node comes back with its old data: it is added again,
		// as a spare, and catches up.
		back := f.Restart(victim, joinTo(leader))
		eventually(t, time.Minute, "the removed node back as a spare", func() bool {
			_, nv := roles(t, leader.Server())
			return slices.Contains(nv, victim.ID)
		})
		if err := back.Node().Linearize(t.Context()); err != nil {
			t.Fatalf("the returning node: %v", err)
		}
		if kv, ok := victim.FSM().Get("w"); !ok || len(kv.Value) == 0 {
			t.Error("the returning node did not catch up")
		}

		// Now the leader dies.
		w = startWriter(f, func() *clustertest.Slot {
			for _, s := range f.Slots {
				if srv := s.Server(); srv != nil && s != leader {
					return s
				}
			}
			return nil
		})
		t1 := time.Now()
		f.Kill(leader)
		nl := fleetLeader(t, f)
		t.Logf("new leader %s after %v", nl.ID, time.Since(t1))
		eventually(t, time.Minute, "five voters again", func() bool {
			v, _ := roles(t, nl.Server())
			return len(v) == 5 && !slices.Contains(v, leader.ID)
		})
		w.mu.Lock()
		w.failed = nil // writes in flight while the leader died may fail; after, none may
		w.mu.Unlock()
		<-time.After(time.Second)
		w.finish(t)
	})
}

// A graceful leave takes the node out of raft at once, long before a dead
// node would be; a restarted node rejoins with its data, no new bootstrap.
func TestLeaveAndRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := cluster.TestServerConfig()
		cfg.DeadServerGrace = time.Hour
		f := clustertest.NewFleet(t, 4, &cfg)
		s0 := f.Slots[0]
		first := f.Start(s0, nil)
		for _, s := range f.Slots[1:] {
			f.Start(s, joinTo(s0))
		}
		eventually(t, time.Minute, "3 voters and a spare", func() bool {
			v, nv := roles(t, first)
			return len(v) == 3 && len(nv) == 1
		})
		leader := fleetLeader(t, f)
		var leaver *clustertest.Slot
		for _, s := range f.Slots {
			if v, _ := roles(t, first); s != leader && slices.Contains(v, s.ID) {
				leaver = s
			}
		}
		if err := leaver.Server().Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 10*time.Second, "the leaver out of raft", func() bool {
			v, nv := roles(t, leader.Server())
			return !slices.Contains(v, leaver.ID) && !slices.Contains(nv, leaver.ID)
		})
		t.Logf("graceful leave out of raft after %v", took)
		eventually(t, time.Minute, "the spare promoted", func() bool {
			v, _ := roles(t, leader.Server())
			return len(v) == 3
		})
		f.Kill(leaver)

		// A voter crashes and comes back with its data.
		v, _ := roles(t, leader.Server())
		var back *clustertest.Slot
		for _, s := range f.Slots {
			if s != leader && slices.Contains(v, s.ID) {
				back = s
			}
		}
		if _, err := leader.Server().Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "before", Value: []byte("1")}}); err != nil {
			t.Fatal(err)
		}
		f.Kill(back)
		if _, err := leader.Server().Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "while-down", Value: []byte("2")}}); err != nil {
			t.Fatal(err)
		}
		srv := f.Restart(back, joinTo(leader))
		if !srv.Node().HasState() {
			t.Fatal("the restarted node found no state")
		}
		if err := srv.Node().Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, ok := back.FSM().Get("while-down"); !ok {
			t.Error("the restarted node did not catch up")
		}
		eventually(t, time.Minute, "the restarted node knows the cluster ID", func() bool {
			return srv.ClusterID() == leader.Server().ClusterID()
		})
		eventually(t, time.Minute, "the restarted node back in raft", func() bool {
			v, nv := roles(t, leader.Server())
			return slices.Contains(append(v, nv...), back.ID)
		})
	})
}

// Two fresh servers started together with BootstrapExpect 2 form one
// cluster, never two.
func TestBootstrapExpectFormsOneCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		a, b := f.Slots[0], f.Slots[1]
		expect := func(peer *clustertest.Slot) func(*cluster.ServerConfig) {
			return func(c *cluster.ServerConfig) { c.BootstrapExpect = 2; c.Join = []string{peer.GossipAddr()} }
		}
		sa := f.Start(a, expect(b))
		sb := f.Start(b, expect(a))
		fleetLeader(t, f)
		eventually(t, time.Minute, "one cluster ID on both", func() bool {
			return sa.ClusterID() != "" && sa.ClusterID() == sb.ClusterID()
		})
		for _, srv := range []*cluster.Server{sa, sb} {
			if v, _ := roles(t, srv); !slices.Equal(v, []string{"s0", "s1"}) {
				t.Errorf("voters %v", v)
			}
		}
	})
}

// Nodes of two clusters bootstrapped apart refuse to merge, and say so.
func TestDifferentClustersRefuseToMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		sa := f.Start(f.Slots[0], nil)
		sb := f.Start(f.Slots[1], nil)
		eventually(t, time.Minute, "both clusters have IDs", func() bool {
			return sa.ClusterID() != "" && sb.ClusterID() != ""
		})
		if _, err := sb.Join([]string{f.Slots[0].GossipAddr()}); err == nil {
			t.Error("a node of another cluster joined")
		}
		<-time.After(time.Second)
		for _, m := range sa.Members() {
			if m.Name == "s1" {
				t.Errorf("s0 lists s1: %+v", m)
			}
		}
	})
}

// A node with another key cannot gossip with the cluster.
func TestWrongKeyIsRefusedAtGossip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k1, err := clusterkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		k2, _ := clusterkey.Generate()
		cfg := cluster.TestServerConfig()
		cfg.Token = &k1
		f := clustertest.NewFleet(t, 3, &cfg)
		s0 := f.Start(f.Slots[0], nil)
		f.Start(f.Slots[1], joinTo(f.Slots[0]))
		eventually(t, time.Minute, "the keyed node joins", func() bool {
			_, nv := roles(t, s0)
			v, _ := roles(t, s0)
			return len(v)+len(nv) == 2
		})
		stranger := f.Start(f.Slots[2], func(c *cluster.ServerConfig) { c.Token = &k2 })
		if _, err := stranger.Join([]string{f.Slots[0].GossipAddr()}); err == nil {
			t.Error("a node with the wrong key joined the gossip ring")
		}
		f.Kill(f.Slots[2])
		keyless := f.Restart(f.Slots[2], func(c *cluster.ServerConfig) { c.Token = nil })
		if _, err := keyless.Join([]string{f.Slots[0].GossipAddr()}); err == nil {
			t.Error("a node with no key joined the gossip ring")
		}
		<-time.After(time.Second)
		v, nv := roles(t, s0)
		if slices.Contains(append(v, nv...), "s2") {
			t.Error("a node without the key got into raft")
		}
		for _, m := range s0.Members() {
			if m.Name == "s2" {
				t.Errorf("a node without the key is a member: %+v", m)
			}
		}
	})
}

// The leader of three healthy voters could not leave: it handed over
// leadership, and the new leader, with no view of its own yet of who was
// up, counted only itself and refused ("voters_after=2 up=1"). A graceful
// leave of the leader succeeds: it is out of raft and the two others
// keep a quorum.
func TestLeaderCanLeaveAHealthyCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 3, nil)
		leader := threeVoters(t, f)
		if err := leader.Server().Leave(t.Context()); err != nil {
			t.Fatalf("the leader's graceful leave: %v", err)
		}
		rest := others(f, leader)
		v, nv := roles(t, rest[0].Server())
		if slices.Contains(v, leader.ID) || slices.Contains(nv, leader.ID) {
			t.Errorf("the leader left but raft still has it: voters %v, non-voters %v", v, nv)
		}
		f.Kill(leader)
		if _, err := rest[1].Server().Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "after", Value: []byte("1")}}); err != nil {
			t.Errorf("a write after the leader left: %v", err)
		}
	})
}

// graft members showed GOSSIP "-" for alive members (a join recorded no
// address), and nodes disagreed on dead and left: memberlist reports both
// alike, so only the leader, which took the leave request, said "left".
// Every node shows every alive member's gossip address, and a node that
// left gracefully as left.
func TestMembersAgreeOnAddressesAndLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := cluster.TestServerConfig()
		cfg.DeadServerGrace = time.Hour
		f := clustertest.NewFleet(t, 4, &cfg)
		s0 := f.Slots[0]
		f.Start(s0, nil)
		for _, s := range f.Slots[1:] {
			f.Start(s, joinTo(s0))
		}
		eventually(t, time.Minute, "every node sees four alive members", func() bool {
			for _, s := range f.Slots {
				ms := s.Server().Members()
				if len(ms) != 4 {
					return false
				}
				for _, m := range ms {
					if m.Gossip != "alive" {
						return false
					}
				}
			}
			return true
		})
		for _, s := range f.Slots {
			for _, m := range s.Server().Members() {
				if m.GossipAddr == "" {
					t.Errorf("%s shows alive member %s with no gossip address", s.ID, m.Name)
				}
			}
		}
		leader := fleetLeader(t, f)
		var leaver *clustertest.Slot
		for _, s := range f.Slots {
			if s != leader {
				leaver = s
			}
		}
		if err := leaver.Server().Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.Kill(leaver)
		eventually(t, time.Minute, "the leaver gone from every node's ring", func() bool {
			for _, s := range f.Slots {
				if s == leaver {
					continue
				}
				for _, m := range s.Server().Members() {
					if m.Name == leaver.ID && (m.Gossip == "alive" || m.Gossip == "suspect") {
						return false
					}
				}
			}
			return true
		})
		for _, s := range f.Slots {
			if s == leaver {
				continue
			}
			for _, m := range s.Server().Members() {
				if m.Name == leaver.ID && m.Gossip != "left" {
					t.Errorf("%s shows %s, which left gracefully, as %q", s.ID, m.Name, m.Gossip)
				}
			}
		}
	})
}

// A leave that would cost the quorum is refused at once, with the reason,
// and the node keeps its seat; the refusal is final, unlike a leader
// that cannot take the request yet. A voter killed a moment ago, which
// the ring still shows alive, does not count as up: the leave was taken,
// and the two voters left, one of them dead, had no quorum.
func TestLeaveThatWouldCostTheQuorumIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := cluster.TestServerConfig()
		cfg.DeadServerGrace = time.Hour
		f := clustertest.NewFleet(t, 3, &cfg)
		leader := threeVoters(t, f)
		rest := others(f, leader)
		f.Kill(rest[0]) // the ring has not noticed yet
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := rest[1].Server().Leave(ctx)
		if err == nil || !strings.Contains(err.Error(), "quorum") {
			t.Fatalf("a leave that would leave one voter up of two: %v, want a refusal naming the quorum", err)
		}
		t.Logf("refused after %v: %v", time.Since(start), err)
		if v, _ := roles(t, leader.Server()); !slices.Contains(v, rest[1].ID) {
			t.Errorf("the refused node lost its seat: voters %v", v)
		}
	})
}

// threeVoters starts every slot of a fleet of three, joined to the first,
// and waits until all three are voters. It returns the leader.
func threeVoters(t *testing.T, f *clustertest.Fleet) *clustertest.Slot {
	t.Helper()
	s0 := f.Slots[0]
	first := f.Start(s0, nil)
	for _, s := range f.Slots[1:] {
		f.Start(s, joinTo(s0))
	}
	eventually(t, time.Minute, "3 voters", func() bool {
		v, _ := roles(t, first)
		return len(v) == 3
	})
	return fleetLeader(t, f)
}

// others returns the slots of f but s.
func others(f *clustertest.Fleet, s *clustertest.Slot) []*clustertest.Slot {
	var out []*clustertest.Slot
	for _, o := range f.Slots {
		if o != s {
			out = append(out, o)
		}
	}
	return out
}
