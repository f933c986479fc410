package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// clusterIDKey holds the cluster's ID in the state machine, written once by
// the first leader.
const clusterIDKey = fsm.InternalPrefix + "cluster-id"

// ServerConfig configures a Server: a raft node that manages its own
// membership through gossip.
type ServerConfig struct {
	// Raft configures the raft node. Its Bootstrap field is ignored: the
	// server decides (see Server).
	Raft Config

	// ClusterName keeps clusters on one network apart.
	ClusterName string
	// GossipBind is the gossip port (UDP and TCP), such as "0.0.0.0:7946";
	// GossipAdvertise the address others reach it at (empty: chosen by
	// memberlist from GossipBind).
	GossipBind      string
	GossipAdvertise string
	Gossip          GossipConfig

	// Join lists gossip addresses of nodes to join, tried with backoff until
	// one answers.
	Join []string
	// BootstrapExpect, if positive, makes a fresh node wait for exactly this
	// many fresh servers (with the same BootstrapExpect) to see each other,
	// then bootstrap them together. Zero: a fresh node with nothing to Join
	// bootstraps alone at once (the embedded default); one with Join waits
	// to be added.
	BootstrapExpect int
	// Voters is the largest number of voters (odd); more servers are
	// non-voters, warm spares that also serve local reads and watches.
	Voters int
	// Token keys the cluster: it encrypts gossip and, with Open, wraps the
	// cluster port in mutual TLS. Nil runs without either (tests only).
	Token *Token
	// Version is graft's version, gossiped for information.
	Version string

	// ReconcileInterval is how often the leader checks membership (events
	// also wake it). DeadServerGrace is how long a server may be dead before
	// the leader removes it from raft. Stabilization is how long a
	// non-voter must stay caught up before it is promoted; CatchupLag how
	// many entries behind the leader still counts as caught up.
	ReconcileInterval time.Duration
	DeadServerGrace   time.Duration
	Stabilization     time.Duration
	CatchupLag        uint64
}

// DefaultServerConfig returns production settings.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Raft:              DefaultConfig(),
		ClusterName:       "graft",
		GossipBind:        "0.0.0.0:7946",
		Gossip:            LANGossip(),
		Voters:            5,
		ReconcileInterval: time.Second,
		DeadServerGrace:   10 * time.Second,
		Stabilization:     3 * time.Second,
		CatchupLag:        256,
	}
}

// TestServerConfig returns settings for in-process tests.
func TestServerConfig() ServerConfig {
	c := DefaultServerConfig()
	c.Raft = TestConfig()
	c.GossipBind = "127.0.0.1:0"
	c.Gossip = TestGossip()
	c.ReconcileInterval = 50 * time.Millisecond
	c.DeadServerGrace = time.Second
	c.Stabilization = 300 * time.Millisecond
	c.CatchupLag = 64
	return c
}

// Validate checks the configuration.
func (c ServerConfig) Validate() error {
	var errs []error
	if err := c.Raft.Validate(); err != nil {
		errs = append(errs, err)
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("cluster config: "+format, args...)) }
	if c.ClusterName == "" {
		bad("ClusterName is empty")
	}
	if c.Voters < 1 || c.Voters%2 == 0 {
		bad("Voters is %d, want an odd number", c.Voters)
	}
	if c.BootstrapExpect < 0 {
		bad("BootstrapExpect is %d", c.BootstrapExpect)
	}
	if c.BootstrapExpect > 0 && c.Raft.NodeID == "" {
		bad("BootstrapExpect needs a NodeID")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ReconcileInterval", c.ReconcileInterval}, {"DeadServerGrace", c.DeadServerGrace},
		{"Stabilization", c.Stabilization}, {"Gossip.ProbeInterval", c.Gossip.ProbeInterval}} {
		if d.v <= 0 {
			bad("%s is %v, want a positive duration", d.name, d.v)
		}
	}
	return errors.Join(errs...)
}

// ServerDeps lets tests replace the network and the stores.
type ServerDeps struct {
	// Raft, if set, is passed to New instead of opening the production
	// stack with Open.
	Raft *Deps
	// GossipTransport, if set, replaces memberlist's UDP/TCP transport.
	GossipTransport memberlist.Transport
}

// Server is a raft node that manages its own membership: it joins a
// gossip ring, bootstraps only when that is safe, and, while it leads,
// reconciles the raft configuration with the ring (see reconcile).
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	node *Node
	ml   *memberlist.Memberlist

	clusterID atomic.Pointer[string]
	wake      chan struct{}

	// The ring as memberlist's events reported it. memberlist's own
	// Members() hands out nodes it keeps changing, so it is not read.
	goneMu   sync.Mutex
	ring     map[string]ringEntry // nodes alive in the ring
	gone     map[string]goneNode  // nodes memberlist reported dead or left
	departed map[string]time.Time // nodes that asked to leave, until they rejoin

	lead leaderState // reconciler state; touched only by the reconcile goroutine

	contactMu sync.Mutex
	contact   map[string]time.Time // servers' last answer to the leader's stats calls

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// ringEntry is a node alive in the ring.
type ringEntry struct {
	meta Meta
	addr string // gossip address
}

// ringView copies the ring.
func (s *Server) ringView() map[string]ringEntry {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	return maps.Clone(s.ring)
}

// goneNode records how and when a node left the ring.
type goneNode struct {
	left bool // a graceful leave; else dead
	at   time.Time
	meta Meta
}

// StartServer starts a raft node and joins the gossip ring.
func StartServer(cfg ServerConfig, f *fsm.FSM, deps ServerDeps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Raft.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rc := cfg.Raft
	rc.Bootstrap = false
	var node *Node
	var err error
	if deps.Raft != nil {
		node, err = New(rc, *deps.Raft)
	} else {
		if cfg.Token != nil {
			if rc.ServerTLS, rc.ClientTLS, err = cfg.Token.ClusterTLS(rc.NodeID); err != nil {
				return nil, err
			}
		}
		node, err = Open(rc, f)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: log.With("node", rc.NodeID), node: node, wake: make(chan struct{}, 1),
		ring: map[string]ringEntry{}, gone: map[string]goneNode{}, departed: map[string]time.Time{}, contact: map[string]time.Time{},
		ctx: ctx, cancel: cancel}
	s.loadClusterID()
	mc, err := s.memberlistConfig(deps.GossipTransport)
	if err == nil {
		s.ml, err = memberlist.Create(mc)
	}
	if err != nil {
		cancel()
		node.Close()
		return nil, fmt.Errorf("cluster: gossip: %w", err)
	}
	onLeave := s.removeLeaving
	node.onLeave.Store(&onLeave)

	switch {
	case node.HasState():
	case len(cfg.Join) == 0 && cfg.BootstrapExpect == 0:
		s.log.Info("no raft state and nobody to join: bootstrapping a new one-node cluster")
		if err := node.Bootstrap([]RaftServer{{ID: rc.NodeID, Address: node.Addr()}}); err != nil {
			s.Close()
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
	case cfg.BootstrapExpect > 0:
		s.goLoop(s.bootstrapExpectLoop)
	default:
		s.log.Info("no raft state: waiting for the cluster's leader to add this node")
	}
	if len(cfg.Join) > 0 {
		s.goLoop(s.joinLoop)
	}
	s.goLoop(s.reconcileLoop)
	return s, nil
}

func (s *Server) goLoop(fn func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// Node returns the raft node.
func (s *Server) Node() *Node { return s.node }

// ClusterID returns the cluster's ID, empty until the node knows it.
func (s *Server) ClusterID() string {
	if p := s.clusterID.Load(); p != nil {
		return *p
	}
	return ""
}

// GossipAddr returns the address of this node's gossip port.
func (s *Server) GossipAddr() string { return s.ml.LocalNode().Address() }

// localMeta is what this node gossips about itself.
func (s *Server) localMeta() Meta {
	return Meta{Cluster: s.cfg.ClusterName, ClusterID: s.ClusterID(), RaftAddr: s.node.Addr(),
		Expect: s.cfg.BootstrapExpect, Version: s.cfg.Version}
}

// loadClusterID reads the cluster ID from the state machine and, when it
// changed, tells the ring.
func (s *Server) loadClusterID() {
	kv, ok := s.node.FSM().Get(clusterIDKey)
	if !ok || string(kv.Value) == s.ClusterID() {
		return
	}
	id := string(kv.Value)
	s.clusterID.Store(&id)
	s.log.Info("cluster ID known", "cluster_id", id)
	if s.ml != nil {
		if err := s.ml.UpdateNode(s.cfg.Gossip.TCPTimeout); err != nil {
			s.log.Warn("could not gossip the cluster ID", "err", err)
		}
	}
}

// kick wakes the reconciler.
func (s *Server) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Join joins the ring through any of addrs (gossip addresses) and returns
// how many nodes answered.
func (s *Server) Join(addrs []string) (int, error) {
	n, err := s.ml.Join(addrs)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("cluster: join %v: %w", addrs, err)
	}
	return n, nil
}

// joinLoop joins the configured seeds, retrying with backoff (1s doubling
// to 30s) until one answers.
func (s *Server) joinLoop(ctx context.Context) {
	wait := time.Second / 2
	for {
		n, err := s.Join(s.cfg.Join)
		if err == nil {
			s.log.Info("joined the cluster's gossip ring", "seeds", s.cfg.Join, "answered", n)
			return
		}
		s.log.Warn("could not join yet; retrying", "seeds", s.cfg.Join, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// bootstrapExpectLoop bootstraps once exactly BootstrapExpect fresh servers
// of this cluster (this one included), all expecting that many, see each
// other, and none of the ring belongs to a cluster already. Every one of
// them computes the same configuration from the same view, so they
// bootstrap the same cluster; a node that sees a cluster ID waits to be
// added instead.
func (s *Server) bootstrapExpectLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	warned := false
	for {
		if s.node.HasState() || s.ClusterID() != "" || s.node.raft.LastIndex() > 0 {
			return
		}
		var fresh []RaftServer
		existing := ""
		for name, e := range s.ringView() {
			meta := e.meta
			if meta.Cluster != s.cfg.ClusterName {
				continue
			}
			if meta.ClusterID != "" {
				existing = name
				continue
			}
			if meta.Expect == s.cfg.BootstrapExpect {
				fresh = append(fresh, RaftServer{ID: name, Address: meta.RaftAddr})
			}
		}
		switch {
		case existing != "":
			s.log.Info("the ring holds a bootstrapped cluster; waiting to be added to it", "seen", existing)
			return
		case len(fresh) == s.cfg.BootstrapExpect:
			slices.SortFunc(fresh, func(a, b RaftServer) int { return compareStrings(a.ID, b.ID) })
			s.log.Info("the expected servers see each other: bootstrapping", "servers", fresh)
			if err := s.node.Bootstrap(fresh); err != nil {
				s.log.Error("bootstrap failed", "err", err)
			}
			return
		case len(fresh) > s.cfg.BootstrapExpect && !warned:
			warned = true
			s.log.Error("more servers than --bootstrap-expect see each other; not bootstrapping: make the count agree",
				"expect", s.cfg.BootstrapExpect, "seen", len(fresh))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// newClusterID returns a random cluster ID.
func newClusterID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Leave leaves the cluster gracefully: leadership goes elsewhere, the
// leader removes this node from raft and releases its slots at once, and
// the ring is told. The server can then be closed.
func (s *Server) Leave(ctx context.Context) error {
	id := s.cfg.Raft.NodeID
	if s.node.IsLeader() && s.otherVoters() > 0 {
		if err := s.node.raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("leadership transfer before leaving failed", "err", err)
		}
	}
	var errs []error
	if s.otherVoters() > 0 || !s.node.IsLeader() {
		if err := s.askLeaderToRemove(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.ml.Leave(s.cfg.Gossip.TCPTimeout); err != nil {
		errs = append(errs, fmt.Errorf("cluster: gossip leave: %w", err))
	}
	return errors.Join(errs...)
}

// otherVoters counts the voters besides this node.
func (s *Server) otherVoters() int {
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) != s.cfg.Raft.NodeID && srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// askLeaderToRemove asks the leader to take id out of raft now.
func (s *Server) askLeaderToRemove(ctx context.Context, id string) error {
	wait := newBackoff()
	for {
		if _, addr := s.node.Leader(); addr != "" && !s.node.IsLeader() {
			resp, err := s.node.rpc.Call(ctx, addr, &Request{Op: rpcLeave, ID: id})
			if err == nil && resp.Code == codeOK {
				s.log.Info("left the raft cluster")
				return nil
			}
		}
		if err := wait.sleep(ctx); err != nil {
			return fmt.Errorf("cluster: leave: no leader took the request: %w", err)
		}
	}
}

// Close shuts the server down without leaving: to the others it looks
// like a crash. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		var errs []error
		if s.ml != nil {
			errs = append(errs, s.ml.Shutdown())
		}
		errs = append(errs, s.node.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
