package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// fullStore is an in-memory raft store whose writes fail with ENOSPC
// while full is set, as a full file system's do, and which counts the
// attempts to record raft's term meanwhile.
type fullStore struct {
	*raft.InmemStore
	full      atomic.Bool
	termTries atomic.Int64
}

func (s *fullStore) fail(what string) error {
	if s.full.Load() {
		return fmt.Errorf("write %s: %w", what, syscall.ENOSPC)
	}
	return nil
}

func (s *fullStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *fullStore) StoreLogs(logs []*raft.Log) error {
	if err := s.fail("logs"); err != nil {
		return err
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *fullStore) Set(k, v []byte) error {
	if err := s.fail("conf"); err != nil {
		return err
	}
	return s.InmemStore.Set(k, v)
}

func (s *fullStore) SetUint64(k []byte, v uint64) error {
	if err := s.fail("conf"); err != nil {
		if string(k) == termKey {
			s.termTries.Add(1)
		}
		return err
	}
	return s.InmemStore.SetUint64(k, v)
}

// hashicorp/raft panics when it cannot record a new term (raft.go,
// setCurrentTerm), which a leader whose log write failed for want of space
// soon tries: it steps down and stands again. The node waits for space
// instead, answering writes with ErrNoSpace meanwhile, and leads again
// once space returns.
func TestNodeThatCannotRecordItsTermWaitsForSpaceInsteadOfPanicking(t *testing.T) {
	store := &fullStore{InmemStore: raft.NewInmemStore()}
	cfg := TestConfig()
	cfg.NodeID, cfg.Bootstrap = "solo", true
	_, trans := raft.NewInmemTransport("solo")
	space := &spaceStore{raftStore: store, dataDir: "/data", ctx: t.Context(), log: slog.New(slog.DiscardHandler)}
	n, err := New(cfg, Deps{FSM: fsm.New(fsm.Options{}), Transport: trans, LogStore: space, StableStore: space,
		SnapshotStore: raft.NewInmemSnapshotStore(), RPC: noRPC{}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	defer store.full.Store(false) // so that Close never waits on a term
	write := func(key string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := n.Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte("v")}})
		return err
	}
	waitUntil(t, "a leader", func() bool { return n.IsLeader() })
	if err := write("before"); err != nil {
		t.Fatal(err)
	}
	store.full.Store(true)
	if err := write("full"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("write on a full disk: %v, want ErrNoSpace", err)
	}
	waitUntil(t, "raft to try recording a new term", func() bool { return store.termTries.Load() >= 3 })
	if err := write("still-full"); !errors.Is(err, ErrNoSpace) {
		t.Errorf("write while the term waits for space: %v, want ErrNoSpace", err)
	}
	if _, ok := n.FSM().Get("before"); !ok {
		t.Error("on a full disk, the node cannot read what it holds")
	}
	store.full.Store(false)
	waitUntil(t, "a write after space returned", func() bool { return write("after") == nil })
	for k, want := range map[string]bool{"before": true, "full": false, "still-full": false, "after": true} {
		if _, ok := n.FSM().Get(k); ok != want {
			t.Errorf("%s applied: %v, want %v", k, ok, want)
		}
	}
}

// waitUntil polls cond for up to 30 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(10 * time.Millisecond)
	}
}
