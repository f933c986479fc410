package raftnode

import (
	"github.com/hashicorp/raft"
)

// heartbeatGate is raft's network transport with its heartbeat fast path
// counted, so that Close can wait for the heartbeats in progress before
// it closes the stores.
//
// The transport answers a leader's heartbeat on its own connection
// goroutine, calling into raft outside raft's main loop; raft checks that
// it is not shut down only on entry, so a heartbeat that entered before
// Shutdown may still save a new term afterwards. Were the stores closed
// by then, raft would panic ("failed to save current term: database not
// open"; hashicorp/raft issue 717): a node restarted into a live cluster
// crashed so under load.
type heartbeatGate struct {
	*raft.NetworkTransport
	beats gate
}

// SetHeartbeatHandler registers cb, counted: once the gate is closed,
// heartbeats are refused without reaching raft.
func (h *heartbeatGate) SetHeartbeatHandler(cb func(raft.RPC)) {
	if cb == nil {
		h.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	h.NetworkTransport.SetHeartbeatHandler(h.counted(cb))
}

func (h *heartbeatGate) counted(cb func(raft.RPC)) func(raft.RPC) {
	return func(rpc raft.RPC) {
		if !h.beats.enter() {
			rpc.Respond(nil, ErrClosed)
			return
		}
		defer h.beats.exit()
		cb(rpc)
	}
}

// closeBeats refuses further heartbeats and waits for those in progress.
func (h *heartbeatGate) closeBeats() { h.beats.close() }
