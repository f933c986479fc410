package clustertest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

// raftNet is an in-memory network for raft and graft's RPCs, split into
// partition groups. Cluster and Fleet both run their nodes on one.
type raftNet struct {
	mu    sync.Mutex
	hosts []*host
	cut   map[string]int // partition group by host ID; 0 = the main one
	// links are the pairs of hosts (by ID, in either order) that cannot
	// reach each other though in one group.
	links map[[2]string]bool
	// mute says, by host ID, how a host handles graft's RPCs besides
	// raft's: muteAll never answers (a frozen process), muteAnswers does
	// what it is asked but its answers are lost.
	mute map[string]muteMode
}

type muteMode int

const (
	muteNone muteMode = iota
	muteAll
	muteAnswers
	muteRefuse
)

// host is one place on a raftNet. Its stores outlive the node running
// there, so a node restarted on it has its state, as from its data dir.
type host struct {
	ID string

	net   *raftNet
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	store *archiveStore
	snaps *snapshotStore

	// Guarded by net.mu.
	node *raftnode.Node  // nil while down
	srv  *cluster.Server // the server node belongs to, if a Fleet's
	fsm  *fsm.FSM
}

func newRaftNet() *raftNet {
	return &raftNet{cut: map[string]int{}, links: map[[2]string]bool{}, mute: map[string]muteMode{}}
}

// reach reports whether hosts a and b can reach each other. Call with
// n.mu held.
func (n *raftNet) reach(a, b string) bool {
	return n.cut[a] == n.cut[b] && !n.links[[2]string{a, b}] && !n.links[[2]string{b, a}]
}

// cutLink cuts the link between hosts a and b, or restores every link if
// a is empty, and rewires the transports.
func (n *raftNet) cutLink(a, b string) {
	n.mu.Lock()
	if a == "" {
		clear(n.links)
	} else {
		n.links[[2]string{a, b}] = true
	}
	n.mu.Unlock()
	n.connect()
}

// setMute sets how the host handles RPCs.
func (n *raftNet) setMute(h *host, m muteMode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m == muteNone {
		delete(n.mute, h.ID)
	} else {
		n.mute[h.ID] = m
	}
}

// add puts a new host with empty stores on the network.
func (n *raftNet) add(id string) *host {
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	h := &host{ID: id, net: n, addr: addr, trans: trans,
		store: newArchiveStore(), snaps: &snapshotStore{}}
	n.mu.Lock()
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	return h
}

// connect wires every transport to every other one in its partition group.
func (n *raftNet) connect() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range n.hosts {
		a.trans.DisconnectAll()
		for _, b := range n.hosts {
			if a != b && n.reach(a.ID, b.ID) {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// partition moves the named hosts to group 1, or every host back to group
// 0 if ids is nil, and rewires the transports.
func (n *raftNet) partition(ids []string) {
	n.mu.Lock()
	if ids == nil {
		clear(n.cut)
	}
	for _, id := range ids {
		n.cut[id] = 1
	}
	n.mu.Unlock()
	n.connect()
}

// group is h's partition group.
func (n *raftNet) group(h *host) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[h.ID]
}

// deps is what a node started on h runs on, with f as its state machine.
func (h *host) deps(f *fsm.FSM) *raftnode.Deps {
	return &raftnode.Deps{FSM: f, Transport: h.trans, LogStore: h.store, StableStore: h.store,
		SnapshotStore: h.snaps, RPC: &rpcView{from: h}}
}

// up records what runs on h: a node, or a server and its node.
func (h *host) up(node *raftnode.Node, srv *cluster.Server, f *fsm.FSM) {
	h.net.mu.Lock()
	h.node, h.srv, h.fsm = node, srv, f
	h.net.mu.Unlock()
}

// Node returns the running node, or nil if the host is down.
func (h *host) Node() *raftnode.Node {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	return h.node
}

// FSM returns the host's state machine (the current one if restarted).
func (h *host) FSM() *fsm.FSM {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	return h.fsm
}

// down stops what runs on h, if anything, and closes h's transport, so
// that peers' messages to it fail as to a dead host.
func (h *host) down() {
	h.net.mu.Lock()
	node, srv := h.node, h.srv
	h.node, h.srv = nil, nil
	h.net.mu.Unlock()
	switch {
	case srv != nil:
		_ = srv.Close()
	case node != nil:
		_ = node.Close()
	default:
		return
	}
	_ = h.trans.Close()
}

// renew gives a downed host a fresh transport at its address, wired to its
// partition group.
func (h *host) renew() {
	_, trans := raft.NewInmemTransport(h.addr)
	h.net.mu.Lock()
	h.trans = trans
	h.net.mu.Unlock()
	h.net.connect()
}

// rpcView is one host's view of the in-memory RPC network.
type rpcView struct{ from *host }

func (v *rpcView) Call(ctx context.Context, addr string, req *transport.Request) (*transport.Response, error) {
	n := v.from.net
	n.mu.Lock()
	var target *raftnode.Node
	mute := muteNone
	for _, h := range n.hosts {
		if string(h.addr) != addr {
			continue
		}
		if mute = n.mute[h.ID]; mute == muteAll || n.reach(h.ID, v.from.ID) {
			target = h.node
		}
	}
	n.mu.Unlock()
	if mute == muteAll {
		// Sent to a process that never reads it.
		<-ctx.Done()
		return nil, fmt.Errorf("clustertest: %s does not answer: %w", addr, ctx.Err())
	}
	if target == nil {
		return nil, transport.Unreachable(fmt.Errorf("clustertest: %s unreachable from %s", addr, v.from.ID))
	}
	if mute == muteRefuse {
		return nil, transport.Unreachable(fmt.Errorf("clustertest: %s refused the connection: too many connections handshaking from this address", addr))
	}
	resp := target.HandleRPC(ctx, req)
	if mute == muteAnswers {
		<-ctx.Done()
		return nil, fmt.Errorf("clustertest: the answer from %s was lost: %w", addr, ctx.Err())
	}
	return resp, nil
}

// archiveStore is raft's in-memory store that also keeps every log entry
// it was given, latest at each index, even once raft has compacted it
// away or truncated it: what a test reads as the log (host.Log).
type archiveStore struct {
	*raft.InmemStore
	mu   sync.Mutex
	kept map[uint64]raft.Log
}

func newArchiveStore() *archiveStore {
	return &archiveStore{InmemStore: raft.NewInmemStore(), kept: map[uint64]raft.Log{}}
}

func (s *archiveStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *archiveStore) StoreLogs(logs []*raft.Log) error {
	if err := s.InmemStore.StoreLogs(logs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range logs {
		s.kept[l.Index] = *l
	}
	return nil
}

// Log returns every raft log entry h's store was ever given, oldest
// first, the latest given at each index: those raft has since compacted
// into a snapshot or truncated too. An entry a leader appended and lost
// before it committed stays until another is given at its index. It may
// be called while the node runs.
func (h *host) Log() []raft.Log {
	s := h.store
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]raft.Log, 0, len(s.kept))
	for _, l := range s.kept {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b raft.Log) int { return cmp.Compare(a.Index, b.Index) })
	return out
}
