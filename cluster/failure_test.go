package cluster_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/fsm"
)

func grow3(t *testing.T, cfg *cluster.ServerConfig) (*clustertest.Fleet, *cluster.Server) {
	t.Helper()
	f := clustertest.NewFleet(t, 3, cfg)
	first := f.Start(f.Slots[0], nil)
	for _, s := range f.Slots[1:] {
		f.Start(s, joinTo(f.Slots[0]))
	}
	eventually(t, time.Minute, "three voters", func() bool { v, _ := roles(t, first); return len(v) == 3 })
	return f, first
}

// A partition longer than memberlist gossips to the dead heals: the cut-off
// voter, removed meanwhile, finds the cluster again and gets its seat back.
func TestLongPartitionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, _ := grow3(t, nil)
		leader := fleetLeader(t, f)
		var cut *clustertest.Slot
		for _, s := range f.Slots {
			if s != leader {
				cut = s
			}
		}
		f.Partition(cut)
		eventually(t, time.Minute, "the cut-off voter removed", func() bool {
			v, _ := roles(t, leader.Server())
			return !slices.Contains(v, cut.ID)
		})
		<-time.After(time.Minute) // far beyond GossipToTheDeadTime
		f.Heal()
		took := eventually(t, time.Minute, "the healed node a voter again", func() bool {
			v, _ := roles(t, leader.Server())
			return len(v) == 3
		})
		t.Logf("back in %v", took)
	})
}

// A new leader whose gossip ring has not converged (it restarted, and its
// only seed is dead) neither releases a live node's slots nor removes a live
// voter: the live node answers the leader's progress calls.
func TestNewLeaderWithPartialRingTouchesNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, _ := grow3(t, nil)
		s0, s1, s2 := f.Slots[0], f.Slots[1], f.Slots[2]
		acq := []fsm.Command{{Op: fsm.OpSemaAcquire, Sema: "db", Count: 1, Node: s2.ID, Holder: "h1"}}
		if res, err := s2.Server().Node().Apply(t.Context(), acq); err != nil || !res[0].Granted {
			t.Fatalf("acquire: %v %+v", err, res)
		}
		f.Kill(s0) // the seed dies and is removed
		eventually(t, time.Minute, "s0 removed", func() bool {
			v, _ := roles(t, s2.Server())
			return len(v) == 2
		})
		f.Kill(s1)
		<-time.After(time.Minute)
		f.Restart(s1, joinTo(s0)) // its seed is dead
		fleetLeader(t, f)
		if !s1.Server().Node().IsLeader() {
			if err := s2.Server().Node().TransferLeadership(); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "s1 leads", func() bool { return s1.Server().Node().IsLeader() })
		<-time.After(5 * time.Second)
		if _, held := s2.FSM().Sema("db"); !held {
			t.Error("a live node's semaphore slot was released")
		}
		if v, _ := roles(t, s1.Server()); !slices.Contains(v, s2.ID) {
			t.Errorf("live voter s2 removed: voters %v", v)
		}
	})
}

// A graceful leave is refused when the voters left up would not be a
// quorum; writes keep working.
func TestLeaveNeverCostsQuorum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := cluster.TestServerConfig()
		cfg.DeadServerGrace = time.Minute
		f, _ := grow3(t, &cfg)
		leader := fleetLeader(t, f)
		var others []*clustertest.Slot
		for _, s := range f.Slots {
			if s != leader {
				others = append(others, s)
			}
		}
		f.Kill(others[0])
		<-time.After(3 * time.Second) // dead, still a voter within its grace
		lctx, lcancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := others[1].Server().Leave(lctx)
		lcancel()
		if err == nil {
			t.Error("a leave that costs the quorum was accepted")
		}
		f.Kill(others[1])
		f.Restart(others[1], joinTo(leader)) // it comes back
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := leader.Server().Node().Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: "k", Value: []byte("v")}}); err != nil {
			t.Errorf("write after the refused leave: %v", err)
		}
	})
}

// The whole cluster restarts at once, each node with no seed: they find
// each other through the peers they remember, and carry on.
func TestWholeClusterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, _ := grow3(t, nil)
		leader := fleetLeader(t, f)
		if _, err := leader.Server().Node().Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "k", Value: []byte("v")}}); err != nil {
			t.Fatal(err)
		}
		<-time.After(3 * time.Second) // let the peer stores be written
		for _, s := range f.Slots {
			f.Kill(s)
		}
		for _, s := range f.Slots {
			f.Restart(s, nil)
		}
		nl := fleetLeader(t, f)
		eventually(t, time.Minute, "all three in one ring", func() bool {
			return len(nl.Server().Members()) == 3
		})
		if err := nl.Server().Node().Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		if v, _ := roles(t, nl.Server()); len(v) != 3 {
			t.Errorf("voters %v", v)
		}
		if _, ok := nl.FSM().Get("k"); !ok {
			t.Error("state lost across the restart")
		}
	})
}
