package raftnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// badPages is an in-memory raft store whose log reads panic once bad is
// set, as bolt's do on a page overwritten under it.
type badPages struct {
	*raft.InmemStore
	bad    atomic.Bool
	panics atomic.Int64
}

func (s *badPages) GetLog(i uint64, l *raft.Log) error {
	if s.bad.Load() {
		s.panics.Add(1)
		panic(fmt.Sprintf("assertion failed: Page expected to be: %d, but self identifies as 42", i))
	}
	return s.InmemStore.GetLog(i, l)
}

// startOnStore starts a node on trans with store as its raft store, seen
// through the damage guard as Open sets it up for a data dir.
func startOnStore(t *testing.T, id string, trans *raft.InmemTransport, store raftStore) *Node {
	t.Helper()
	cfg := TestConfig()
	cfg.NodeID = id
	n := newNode(cfg)
	n.fsm, n.trans, n.rpc = fsm.New(fsm.Options{}), trans, noRPC{}
	n.damage.raftDir, n.damage.db = "/data/raft", "/data/raft/raft.db"
	n.own = &damageStore{raftStore: store, latch: n.damage}
	parked := &damageStore{raftStore: store, latch: n.damage, raft: true}
	if err := n.start(Deps{FSM: n.fsm, Transport: trans, LogStore: parked, StableStore: parked,
		SnapshotStore: raft.NewInmemSnapshotStore(), RPC: noRPC{}}); err != nil {
		n.cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// A follower applies committed entries by reading them from its log
// store, and raft panics on an error there ("failed to get log"). A
// follower whose store panics on a damaged page as it applies stops
// applying and says its state is damaged, without a panic; it closes, and
// the two others go on writing.
func TestFollowerDamagedAsItAppliesStopsWithoutRaftPanicking(t *testing.T) {
	var nodes []*Node
	var trans []*raft.InmemTransport
	var servers []RaftServer
	for _, id := range []string{"a", "b", "c"} {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		trans = append(trans, tr)
		servers = append(servers, RaftServer{ID: id, Address: string(addr)})
	}
	for _, a := range trans {
		for _, b := range trans {
			if a != b {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	damaged := &badPages{InmemStore: raft.NewInmemStore()}
	for i, id := range []string{"a", "b", "c"} {
		store := raftStore(raft.NewInmemStore())
		if id == "c" {
			store = damaged
		}
		nodes = append(nodes, startOnStore(t, id, trans[i], store))
	}
	if err := nodes[0].Bootstrap(servers); err != nil {
		t.Fatal(err)
	}
	leader := func() *Node {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); <-time.After(10 * time.Millisecond) {
			for _, n := range nodes[:2] {
				if n.IsLeader() {
					return n
				}
			}
		}
		t.Fatal("neither a nor b leads")
		return nil
	}
	write := func(key string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := leader().Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte("v")}})
		return err
	}
	if err := write("before"); err != nil {
		t.Fatal(err)
	}
	c := nodes[2]
	damaged.bad.Store(true)
	for i := 0; ; i++ {
		if err := write(fmt.Sprintf("after%d", i)); err != nil && !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("write after c's damage: %v", err)
		}
		select {
		case <-c.Damaged():
		case <-time.After(10 * time.Millisecond):
			if i == 1000 {
				t.Fatal("c did not find its store damaged after 1000 writes")
			}
			continue
		}
		break
	}
	err := c.DamageErr()
	if !errors.Is(err, ErrDamagedState) || !strings.Contains(err.Error(), "/data/raft/raft.db: reading it failed") {
		t.Errorf("c says %v, want ErrDamagedState naming raft.db", err)
	}
	if damaged.panics.Load() == 0 {
		t.Fatal("c's store never panicked")
	}
	if err := c.Close(); err != nil {
		t.Errorf("closing c: %v", err)
	}
	for i := range 20 {
		if err := write(fmt.Sprintf("without-c%d", i)); err != nil {
			t.Fatalf("write without c: %v", err)
		}
	}
}
