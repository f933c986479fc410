package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/internal/loglimit"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

// ServerConfig configures a Server: a raft node that manages its own
// membership through gossip.
type ServerConfig struct {
	// Raft configures the raft node. Its Bootstrap stays false: the server
	// decides when to bootstrap (see Server).
	Raft raftnode.Config

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
	// and no remembered peers (see PeerStore) bootstraps alone at once (the
	// embedded default); one with either waits to be added.
	BootstrapExpect int
	// Voters is the largest number of voters (odd); more servers are
	// non-voters, warm spares that also serve local reads and watches.
	Voters int
	// Token keys the cluster: it encrypts gossip and, with Open, wraps the
	// cluster port in mutual TLS. Nil runs without either (tests only).
	Token *clusterkey.Token
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
	// ReleaseGrace is how long a failed node must stay failed before its
	// semaphore slots and ephemeral keys are released: a node wrongly
	// declared dead for a moment keeps them. A node that left gracefully
	// releases them at once.
	ReleaseGrace time.Duration
	// ReconnectInterval is how often every node tries to reach the members
	// it knows but does not see in the ring (and its seeds), so partitions
	// heal and a restarted cluster finds itself again.
	ReconnectInterval time.Duration
	// ExportGrace is how long a node must be gone for good (in neither the
	// raft configuration nor the ring: removed after DeadServerGrace, or
	// left) before the leader withdraws the resources it exported. A node
	// that restarts or crashes keeps them; so does one that comes back
	// within the grace.
	ExportGrace time.Duration

	// OnOtherCluster, if set, is called when the Join seeds turn out to
	// belong to another cluster while this node has never had a peer (see
	// Server.NeverHadPeer): its raft state cannot join them, and its owner
	// may set it aside and start the node afresh. It is called once, on
	// the server's own goroutine, and must not block (nor close the
	// server). Unset, or for a node that had peers, the join loop logs
	// what to do and stops.
	OnOtherCluster func(*OtherClusterError)

	// Insecure allows the production stack to run with no Token: no gossip
	// encryption and a plaintext cluster port. Only for tests.
	Insecure bool
}

// DefaultServerConfig returns production settings. A voter's seat is only
// taken from it after DeadServerGrace (30s, longer than most reboots); a
// spare must stay caught up for Stabilization (10s) to be promoted, as in
// consul's autopilot.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Raft:              raftnode.DefaultConfig(),
		ClusterName:       "graft",
		GossipBind:        "0.0.0.0:7946",
		Gossip:            LANGossip(),
		Voters:            5,
		ReconcileInterval: time.Second,
		DeadServerGrace:   30 * time.Second,
		Stabilization:     10 * time.Second,
		CatchupLag:        256,
		ReleaseGrace:      2 * time.Second,
		ReconnectInterval: 30 * time.Second,
		ExportGrace:       DefaultExportGrace,
	}
}

// DefaultExportGrace is the default ExportGrace: a node removed from the
// cluster has its exports withdrawn a minute later.
const DefaultExportGrace = time.Minute

// TestServerConfig returns settings for in-process tests.
func TestServerConfig() ServerConfig {
	c := DefaultServerConfig()
	c.Raft = raftnode.TestConfig()
	c.GossipBind = "127.0.0.1:0"
	c.Gossip = TestGossip()
	c.ReconcileInterval = 50 * time.Millisecond
	c.DeadServerGrace = time.Second
	c.Stabilization = 300 * time.Millisecond
	c.CatchupLag = 64
	c.ReleaseGrace = 200 * time.Millisecond
	c.ReconnectInterval = time.Second
	c.ExportGrace = time.Second
	return c
}

// Validate checks the configuration.
func (c ServerConfig) Validate() error {
	var errs []error
	if err := c.Raft.Validate(); err != nil {
		errs = append(errs, err)
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("cluster config: "+format, args...)) }
	if c.Raft.Bootstrap {
		bad("Raft.Bootstrap is set: a server decides when to bootstrap (a fresh node with nobody to join, or --bootstrap-expect); leave it false")
	}
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
		{"Stabilization", c.Stabilization}, {"Gossip.ProbeInterval", c.Gossip.ProbeInterval},
		{"ReconnectInterval", c.ReconnectInterval}, {"ExportGrace", c.ExportGrace}} {
		if d.v <= 0 {
			bad("%s is %v, want a positive duration", d.name, d.v)
		}
	}
	c.semaphoreTimingRules(bad)
	return errors.Join(errs...)
}

// semaphoreTimingRules checks the relations a semaphore holder's safety
// rests on (README, "Cluster semaphores"): a holder's lease, at most
// ReleaseGrace (world.DefaultLeaseTimeout is ReleaseGrace), must end before
// the cluster releases its slots, twice ReleaseGrace after the leader last
// heard from it. A deposed leader still heartbeats the followers it can
// reach until it steps down, up to twice LeaderLeaseTimeout after its
// majority last answered: ReleaseGrace covers that. A server down and
// never reported dead fails DeadServerGrace after it was last heard from,
// and is removed then: its slots must be released first.
func (c ServerConfig) semaphoreTimingRules(bad func(string, ...any)) {
	if c.ReleaseGrace <= 0 {
		bad("ReleaseGrace is %v, want a positive duration", c.ReleaseGrace)
		return
	}
	if lease := c.Raft.LeaderLeaseTimeout; c.ReleaseGrace < 2*lease {
		bad("ReleaseGrace %v is shorter than twice Raft.LeaderLeaseTimeout %v: a deposed leader could keep a follower's semaphore lease alive past its release", c.ReleaseGrace, lease)
	}
	if c.DeadServerGrace < 2*c.ReleaseGrace {
		bad("DeadServerGrace %v is shorter than twice ReleaseGrace %v: a silent server could be removed before its semaphore slots are released", c.DeadServerGrace, c.ReleaseGrace)
	}
}

// ServerDeps lets tests replace the state machine, the network and the
// stores; the zero ServerDeps is the production set.
type ServerDeps struct {
	// FSM, if set, is the state machine Open replicates; if not, the
	// server makes a new one, logging to the configured logger. With Raft
	// set, Raft.FSM is the state machine instead.
	FSM *fsm.FSM
	// Raft, if set, is passed to New instead of opening the production
	// stack with Open.
	Raft *raftnode.Deps
	// GossipTransport, if set, replaces memberlist's UDP/TCP transport.
	GossipTransport memberlist.Transport
	// Peers, if set, replaces the file in the data dir that remembers the
	// gossip addresses of the cluster's members across restarts.
	Peers PeerStore
}

// Server is a raft node that manages its own membership: it joins a
// gossip ring, bootstraps only when that is safe, and, while it leads,
// reconciles the raft configuration with the ring (see plan).
type Server struct {
	// What the server is made of.
	cfg  ServerConfig
	log  *slog.Logger
	node *raftnode.Node
	ml   *memberlist.Memberlist

	// The cluster this node belongs to, refusals of other clusters, and
	// what the node tells its peers in its gossip metadata.
	clusterID    atomic.Pointer[string]
	alone        bool                              // bootstraps a cluster of its own when it starts
	bootstrapped atomic.Bool                       // bootstrapped one since it started (BootstrapFresh)
	refusal      atomic.Pointer[OtherClusterError] // the last merge refused for another cluster
	refusals     atomic.Uint64                     // how many were refused
	idWaits      atomic.Uint64                     // merges refused until a cluster ID is known
	refusalLog   *loglimit.Limiter                 // rate-limits the log lines of refused merges
	leaving      atomic.Bool                       // Leave has begun: gossiped in Meta
	metaTurn     chan struct{}                     // one updateMeta at a time
	expectSet    atomic.Pointer[string]            // bootstrap-expect: the set this node would bootstrap
	gossipAddr   string
	peers        PeerStore // the peers remembered across restarts

	// Each loop has a wake channel of its own: a kick wakes every loop
	// that waits for one (a shared channel of capacity 1 would wake one).
	reconcileWake chan struct{} // the ring changed: reconcile now
	expectWake    chan struct{} // the ring changed: look at the bootstrap set now
	peersWake     chan struct{} // the ring grew: remember its members now
	joinWake      chan struct{} // another node joined the ring: the join loop may stop
	leaveReqs     chan leaveReq // graceful leaves for the reconcile goroutine

	// The ring as memberlist's events reported it. memberlist's own
	// Members() hands out nodes it keeps changing, so it is not read.
	goneMu   sync.Mutex
	ring     map[string]ringEntry // nodes alive in the ring
	gone     map[string]goneNode  // nodes memberlist reported dead or left
	departed map[string]time.Time // nodes that asked to leave, until they rejoin
	addrs    map[string]string    // last known gossip address of every node seen

	lead leaderState // reconciler state; touched only by the reconcile goroutine

	contactMu sync.Mutex
	contact   map[string]time.Time // servers' last answer to the leader's stats calls

	// The server's life: its goroutines stop with ctx and Close waits
	// for them.
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

// StartServer starts a raft node, replicating a new state machine (or
// deps' own), and joins the gossip ring.
func StartServer(cfg ServerConfig, deps ServerDeps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Raft.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rc := cfg.Raft
	if cfg.Token == nil && deps.Raft == nil && !cfg.Insecure {
		return nil, errors.New("cluster config: no Token: gossip and the cluster port would be open to anyone (set Insecure only for tests)")
	}
	var node *raftnode.Node
	var err error
	if deps.Raft != nil {
		node, err = raftnode.New(rc, *deps.Raft)
	} else {
		if cfg.Token != nil {
			if rc.ServerTLS, rc.ClientTLS, err = cfg.Token.ClusterTLS(rc.NodeID); err != nil {
				return nil, err
			}
		}
		f := deps.FSM
		if f == nil {
			f = fsm.New(fsm.Options{Logger: log.With("component", "fsm")})
		}
		node, err = raftnode.Open(rc, f)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: log.With("node", rc.NodeID), node: node, metaTurn: make(chan struct{}, 1),
		leaveReqs: make(chan leaveReq), ring: map[string]ringEntry{}, gone: map[string]goneNode{},
		departed: map[string]time.Time{}, addrs: map[string]string{}, contact: map[string]time.Time{},
		peers: deps.Peers, refusalLog: loglimit.New(time.Now), ctx: ctx, cancel: cancel}
	s.makeWakes()
	if s.peers == nil && rc.DataDir != "" && !rc.InMemory {
		s.peers = filePeers(filepath.Join(rc.DataDir, peersFile))
	}
	s.startingClusterID()
	s.recordStateKey()
	remembered, rerr := s.rememberedPeers()
	s.alone = !node.HasState() && len(cfg.Join) == 0 && cfg.BootstrapExpect == 0 && len(remembered) == 0 && rerr == nil
	s.loadClusterID()
	mc, err := s.memberlistConfig(deps.GossipTransport)
	if err == nil {
		s.ml, err = createMemberlist(mc)
	}
	if err != nil {
		cancel()
		node.Close()
		return nil, fmt.Errorf("cluster: gossip: %w", err)
	}
	// memberlist keeps changing its local node: read the address once.
	s.gossipAddr = s.ml.LocalNode().Address()
	node.HandleAsLeader(transport.OpLeave, s.serveLeave)

	if err := s.begin(remembered, rerr); err != nil {
		s.Close()
		return nil, err
	}
	if len(cfg.Join) > 0 {
		s.goLoop(s.joinLoop)
	}
	s.goLoop(s.reconnectLoop)
	if from, moved := s.movedFrom(); moved {
		s.goLoop(func(ctx context.Context) { s.announceMoveLoop(ctx, from) })
	}
	s.goLoop(s.reconcileLoop)
	return s, nil
}

// begin starts the node as its raft state and the peers it remembers
// (remembered, or rerr if they cannot be read) say: a node on a cluster's
// log goes on with it; a fresh one bootstraps a cluster of its own, waits
// for a set to bootstrap with (BootstrapExpect), or waits to be added to
// a cluster. A node whose raft state holds a term only (see
// raftnode.Node.StartedOnLog) is a fresh one that cannot bootstrap.
func (s *Server) begin(remembered []string, rerr error) error {
	cfg, node := s.cfg, s.node
	switch {
	case node.StartedOnLog():
	case s.alone:
		s.log.Info("no raft state and nobody to join: bootstrapping a new one-node cluster")
		if err := s.bootstrapAlone(); err != nil {
			return err
		}
	case cfg.BootstrapExpect > 0 && !node.HasState():
		s.goLoop(s.bootstrapExpectLoop)
	case len(cfg.Join) == 0 && rerr != nil:
		s.log.Warn("no raft state, and the remembered peers cannot be read: not bootstrapping a new cluster; "+
			"waiting to be added to one (remove the peers file to start a new one)", "err", rerr)
	case len(cfg.Join) == 0 && len(remembered) > 0:
		s.log.Info("no raft state, but this node remembers members of a cluster: waiting to be added to theirs "+
			"rather than bootstrapping a new one", "remembered", remembered)
		s.goLoop(func(ctx context.Context) { s.warnWhileAlone(ctx, remembered) })
	case len(cfg.Join) == 0:
		s.log.Warn("this node's raft state holds a term only (it was stopped as a cluster first reached it), and " +
			"it has nobody to join and no peers remembered: it cannot bootstrap a new cluster, and waits to be " +
			"added to one. Give it a member's address to join, or remove its raft state to start a new cluster")
	default:
		s.log.Info("no raft state: waiting for the cluster's leader to add this node")
	}
	return nil
}

// startingClusterID makes the ID of the cluster of a node that starts on
// raft state known from the start: kept beside the state, or read from it
// (see raftnode.Node.RecoverClusterID).
func (s *Server) startingClusterID() {
	if !s.node.HasState() {
		return
	}
	id, err := s.node.RecoverClusterID()
	if err != nil {
		s.log.Warn("could not read the cluster ID from this node's raft state", "err", err)
	}
	if id != "" {
		s.clusterID.Store(&id)
	}
}

// rememberedPeers returns the gossip addresses the peer store remembers.
func (s *Server) rememberedPeers() ([]string, error) {
	if s.peers == nil {
		return nil, nil
	}
	return s.peers.Load()
}

func (s *Server) goLoop(fn func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// Node returns the raft node.
func (s *Server) Node() *raftnode.Node { return s.node }

// BootstrappedAlone reports whether the server bootstrapped a new
// one-node cluster when it started (a fresh node with nobody to join and
// no peers remembered).
func (s *Server) BootstrappedAlone() bool { return s.alone }

// ClusterID returns the cluster's ID, empty until the node knows it.
func (s *Server) ClusterID() string {
	if p := s.clusterID.Load(); p != nil {
		return *p
	}
	return ""
}

// GossipAddr returns the address of this node's gossip port.
func (s *Server) GossipAddr() string { return s.gossipAddr }

// localMeta is what this node gossips about itself.
func (s *Server) localMeta() Meta {
	m := Meta{Cluster: s.cfg.ClusterName, ClusterID: s.ClusterID(), RaftAddr: s.node.Addr(),
		Expect: s.cfg.BootstrapExpect, Version: s.cfg.Version, Leaving: s.leaving.Load(),
		State: s.alone || s.bootstrapped.Load() || s.node.StartedOnLog()}
	if p := s.expectSet.Load(); p != nil {
		m.ExpectSet = *p
	}
	return m
}

// loadClusterID reads the cluster ID from the state machine and, when it
// changed, tells the ring (the state machine's adapter keeps it beside
// raft's state: see raftnode.ClusterIDKey). A node that leaves tells
// nobody: the ring would not pass it on, and the wait would hold up its
// stop.
func (s *Server) loadClusterID() {
	kv, ok := s.node.FSM().Get(raftnode.ClusterIDKey)
	if !ok || string(kv.Value) == s.ClusterID() {
		return
	}
	id := string(kv.Value)
	s.clusterID.Store(&id)
	s.log.Info("cluster ID known", "cluster_id", id)
	if s.ml != nil && !s.leaving.Load() {
		if err := s.updateMeta(); err != nil {
			s.log.Warn("could not gossip the cluster ID", "err", err)
		}
	}
}

// updateMeta gossips this node's metadata anew. The calls are serialised:
// memberlist reads the metadata when the call begins, and a later message
// about a node replaces an earlier one not yet sent, so two calls racing
// could leave the ring with the older metadata (a leave said in it lost,
// say).
func (s *Server) updateMeta() error {
	s.metaTurn <- struct{}{} // a channel, not a mutex: the wait is long
	defer func() { <-s.metaTurn }()
	return s.ml.UpdateNode(s.cfg.Gossip.TCPTimeout)
}

// makeWakes makes the loops' wake channels: one for each loop, so that
// a kick one loop has not taken yet is not taken by another.
func (s *Server) makeWakes() {
	s.reconcileWake, s.expectWake = make(chan struct{}, 1), make(chan struct{}, 1)
	s.peersWake, s.joinWake = make(chan struct{}, 1), make(chan struct{}, 1)
}

// kickPeers wakes the reconnect loop to save the peers it knows.
func (s *Server) kickPeers() {
	select {
	case s.peersWake <- struct{}{}:
	default:
	}
}

// kick wakes the reconciler and the bootstrap-expect loop, each on its
// own channel: a kick pending for one is not taken by the other.
func (s *Server) kick() {
	for _, wake := range []chan struct{}{s.reconcileWake, s.expectWake} {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// newClusterID returns a random cluster ID.
func newClusterID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
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
