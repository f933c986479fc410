package raftnode

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/internal/logtest"
)

// A heartbeat raft's transport is still answering when the node closes
// keeps the stores open until it ends: raft saves a new term from it
// even after Shutdown, and a closed store made it panic ("failed to save
// current term: database not open") when a node was restarted into a
// live cluster under load. Heartbeats that arrive later are refused.
func TestCloseWaitsForHeartbeatInProgress(t *testing.T) {
	n := openKeyedNode(t, "a", newToken(t), true, logtest.New(), nil)
	stable := n.stores[0].(raft.StableStore)
	entered, releaseCh := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(releaseCh) })
	defer release() // a failing test must not leave Close waiting
	storeErr := make(chan error, 1)
	beat := n.beats.counted(func(rpc raft.RPC) {
		close(entered)
		<-releaseCh
		_, err := stable.GetUint64([]byte("CurrentTerm"))
		storeErr <- err
		rpc.Respond(nil, nil)
	})
	go beat(raft.RPC{Command: &raft.AppendEntriesRequest{}, RespChan: make(chan raft.RPCResponse, 1)})
	<-entered

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		n.Close()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !gateClosed(&n.beats.beats) {
		select {
		case <-closed:
			t.Fatal("Close returned while a heartbeat was in progress")
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not stop the heartbeats within 20s")
		}
	}
	release()
	if err := <-storeErr; err != nil {
		t.Errorf("the store, read by the heartbeat in progress while the node closed: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20s of the heartbeat ending")
	}

	resp := make(chan raft.RPCResponse, 1)
	called := false
	n.beats.counted(func(raft.RPC) { called = true })(raft.RPC{Command: &raft.AppendEntriesRequest{}, RespChan: resp})
	if r := <-resp; called || !errors.Is(r.Error, ErrClosed) {
		t.Errorf("a heartbeat after Close: reached raft %v, answered %v; want refused with ErrClosed", called, r.Error)
	}
}

func gateClosed(g *gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}
