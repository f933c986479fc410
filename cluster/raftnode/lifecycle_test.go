package raftnode

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

// pausableLogs is a log store whose writes can be held, to freeze raft's
// main loop (it stores the leader's entries itself) at a chosen moment.
type pausableLogs struct {
	raft.LogStore
	mu   sync.Mutex
	hold chan struct{} // non-nil: writes wait until it closes
}

func (p *pausableLogs) pause() {
	p.mu.Lock()
	p.hold = make(chan struct{})
	p.mu.Unlock()
}

func (p *pausableLogs) resume() {
	p.mu.Lock()
	close(p.hold)
	p.hold = nil
	p.mu.Unlock()
}

func (p *pausableLogs) StoreLogs(logs []*raft.Log) error {
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return p.LogStore.StoreLogs(logs)
}

func (p *pausableLogs) StoreLog(l *raft.Log) error { return p.StoreLogs([]*raft.Log{l}) }

// noRPC is an RPC network that reaches nobody.
type noRPC struct{}

func (noRPC) Call(context.Context, string, *transport.Request) (*transport.Response, error) {
	return nil, transport.Unreachable(errors.New("no network"))
}

// soloNode starts a one-node cluster on in-memory stores whose log writes
// can be paused, and waits until it leads.
func soloNode(t *testing.T) (*Node, *pausableLogs) {
	t.Helper()
	cfg := TestConfig()
	cfg.NodeID, cfg.Bootstrap = "solo", true
	store := raft.NewInmemStore()
	logs := &pausableLogs{LogStore: store}
	_, trans := raft.NewInmemTransport("solo")
	n, err := New(cfg, Deps{FSM: fsm.New(fsm.Options{}), Transport: trans, LogStore: logs, StableStore: store,
		SnapshotStore: raft.NewInmemSnapshotStore(), RPC: noRPC{}})
	if err != nil {
		t.Fatal(err)
	}
	for !n.IsLeader() {
		<-time.After(10 * time.Millisecond)
	}
	if _, err := n.Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "warm", Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	return n, logs
}

// The agent hung for ever on SIGINT right after its node won an election:
// a write was queued in raft (whose Apply queue is buffered) when Close
// shut raft down before raft's main loop had read it, and raft never
// answers a future it has not read, so Close waited on it for ever. Here
// raft's loop is held in a log write while a second write queues behind
// it, and Close starts then: it must wait for the write with raft still
// running, then stop.
func TestCloseWithAWriteQueuedInRaftDoesNotHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, logs := soloNode(t)
		logs.pause()
		results := make(chan error, 2)
		write := func(key string) {
			_, err := n.Apply(context.Background(), []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte("v")}})
			results <- err
		}
		go write("a") // raft's loop takes it and blocks storing it
		synctest.Wait()
		go write("b") // queued in raft's Apply channel behind it
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- n.Close() }()
		synctest.Wait()
		logs.resume()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Close still waiting a minute after raft's loop was released")
		}
		for range 2 {
			if err := <-results; err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrAmbiguous) {
				t.Errorf("a write in flight at Close ended with %v", err)
			}
		}
	})
}

// The restarted node crashed: its cluster port serves before raft exists
// (raft needs the port to start), and the leader's stats RPC arriving in
// that window dereferenced a nil raft. A node that is not ready answers
// "not ready", whatever the request.
func TestRPCBeforeRaftStartsAnswersNotReady(t *testing.T) {
	cfg := TestConfig()
	cfg.NodeID = "starting"
	n := newNode(cfg) // as Open has it while raft starts
	defer n.cancel()
	for _, op := range []uint8{transport.OpStats, transport.OpApply, transport.OpReadIndex, transport.OpLeave} {
		resp := n.HandleRPC(t.Context(), &transport.Request{Op: op})
		if resp.Code != transport.CodeNotReady {
			t.Errorf("op %d on a node without raft: code %d (%s), want not ready", op, resp.Code, resp.Err)
		}
	}
}

// A node that is closing answers RPCs "not ready" too, and takes no more
// writes.
func TestRPCWhileClosingAnswersNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _ := soloNode(t)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if resp := n.HandleRPC(t.Context(), &transport.Request{Op: transport.OpStats}); resp.Code != transport.CodeNotReady {
			t.Errorf("stats on a closed node: code %d, want not ready", resp.Code)
		}
		if _, err := n.Apply(t.Context(), []fsm.Command{{Op: fsm.OpPut, Key: "k"}}); !errors.Is(err, ErrClosed) {
			t.Errorf("write on a closed node: %v, want ErrClosed", err)
		}
		if err := n.Linearize(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("read on a closed node: %v, want ErrClosed", err)
		}
	})
}

// A forwarded write fenced for another term than the leader's is refused
// before it reaches the log, with the leader's term for the next try.
func TestStaleFenceIsRefusedWithTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _ := soloNode(t)
		defer n.Close()
		term := n.raft.CurrentTerm()
		data, err := fsm.EncodeBatch([]fsm.Command{{Op: fsm.OpFence, Term: term - 1, Request: "r"},
			{Op: fsm.OpPut, Key: "stale", Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		resp := n.HandleRPC(t.Context(), &transport.Request{Op: transport.OpApply, Data: data})
		if resp.Code != transport.CodeNotLeader || resp.Term != term {
			t.Errorf("stale fence: %+v, want not leader with term %d", resp, term)
		}
		if _, ok := n.fsm.Get("stale"); ok {
			t.Error("a write fenced for an old term was applied")
		}
	})
}
