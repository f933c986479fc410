package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
)

// Errors a write can end with, besides the context's.
var (
	// ErrNoLeader means no leader was found within ForwardTimeout (or the
	// caller's deadline): the cluster has no quorum, or is electing.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrAmbiguous means the write may or may not have been applied: the
	// leader was lost, or the connection to it, after the write was sent.
	ErrAmbiguous = errors.New("cluster: write outcome unknown")
	// ErrLeaderUnreachable means a leader was known but no write reached
	// it within ForwardTimeout (or the caller's deadline); the error says
	// why the last attempt did not.
	ErrLeaderUnreachable = errors.New("cluster: the leader cannot be reached")
	// ErrClosed means the node is shut down.
	ErrClosed = errors.New("cluster: node closed")
)

// Deps are what New needs besides the configuration. Open builds the
// production set; tests pass in-memory ones.
type Deps struct {
	FSM           *fsm.FSM
	Transport     raft.Transport
	LogStore      raft.LogStore
	StableStore   raft.StableStore
	SnapshotStore raft.SnapshotStore
	RPC           transport.Net
}

// Node is one member of the raft group.
type Node struct {
	// What the node is made of: raft, its stores and transport, and the
	// write path (batcher, forwarder).
	cfg  Config
	log  *slog.Logger
	fsm  *fsm.FSM
	raft *raft.Raft
	logs raft.LogStore
	// stable is raft's stable store, which also keeps the cluster ID
	// (see storedClusterID).
	stable raft.StableStore
	trans  raft.Transport
	rpc    transport.Net
	batch  *batcher
	fwd    *forwarder
	// worstFence is the largest fence a write can carry: a write must
	// fit in an entry with it (see checkWrite).
	worstFence fsm.Encoded

	// The cluster port and the stores the node opened itself (Open).
	mux    *transport.Mux  // nil unless built by Open
	pool   *transport.Pool // nil unless built by Open
	beats  *heartbeatGate  // n.trans if built by Open, else nil
	stores []io.Closer
	space  *spaceStore // the raft store in the data dir; nil unless built by Open
	own    raftStore   // that store as the node's own code reads it (see damageStore); nil unless built by Open
	damage *damageLatch

	// What the node knows of its state and how it answers other nodes.
	termReady atomic.Uint64      // a term in which this leader has applied its own entry
	contacts  contacts           // the answers raft's requests got, for a leader's LeaderContact
	hasState  bool               // raft state existed when the node started
	holdsLog  bool               // and held log entries or a snapshot (see StartedOnLog)
	caught    caughtUp           // whether the FSM has applied the log it started with; see CaughtUp
	handlers  transport.Handlers // answer the RPCs of other nodes (see HandleRPC)

	// ready is closed once start has built raft and the batcher: the
	// cluster port serves (raft needs it to start) before they exist, and
	// an RPC that arrives meanwhile is answered "not ready".
	ready chan struct{}
	// work counts the calls using raft and the node's goroutines; Close
	// waits for them before it shuts raft down (see gate).
	work gate

	// Fenced writes and leadership.
	reqs          *requests     // fenced writes waiting for this replica to apply them
	termHint      atomic.Uint64 // the highest term a leader said it leads in
	leaderChanged signal        // fires when raft reports a new leader (or none)
	checkMu       sync.Mutex    // one checkHeartbeatNow at a time

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// New starts a node on the given dependencies.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.FSM == nil || deps.Transport == nil || deps.LogStore == nil || deps.StableStore == nil ||
		deps.SnapshotStore == nil || deps.RPC == nil {
		return nil, errors.New("cluster: New needs every dependency")
	}
	n := newNode(cfg)
	n.fsm, n.trans, n.rpc = deps.FSM, deps.Transport, deps.RPC
	if err := n.start(deps); err != nil {
		n.cancel()
		return nil, err
	}
	return n, nil
}

func newNode(cfg Config) *Node {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, log: log.With("node", cfg.NodeID), ctx: ctx, cancel: cancel, ready: make(chan struct{}),
		reqs: newRequests()}
	n.damage = newDamageLatch(ctx, n.log)
	n.fwd = &forwarder{n: n}
	n.worstFence = worstFence()
	n.serveOwn()
	return n
}

// Open starts a node with the production dependencies: the cluster port on
// cfg.BindAddr, raft-boltdb stores and file snapshots under cfg.DataDir
// (or, with cfg.InMemory, stores in memory).
func Open(cfg Config, f *fsm.FSM) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" && !cfg.InMemory {
		return nil, errors.New("cluster config: DataDir is empty")
	}
	dir := filepath.Join(cfg.DataDir, "raft")
	if !cfg.InMemory {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			if ro := readOnly(cfg.DataDir, err); ro != nil {
				return nil, ro
			}
			return nil, fmt.Errorf("cluster: %w", err)
		}
		if err := checkState(dir); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen on %s: %w", cfg.BindAddr, err)
	}
	adv, err := advertiseAddr(cfg.AdvertiseAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	n := newNode(cfg)
	n.fsm = f
	n.mux = transport.NewMux(ln, adv, cfg.ServerTLS, cfg.ClientTLS, n.log, n.serveConn, 0)
	fail := func(err error) (*Node, error) {
		n.cancel()
		n.mux.Close()
		n.work.close() // RPC connections the port served meanwhile
		for _, c := range n.stores {
			c.Close()
		}
		return nil, err
	}
	store, snaps, err := n.openStores(dir)
	if err != nil {
		return fail(err)
	}
	n.beats = &heartbeatGate{NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.mux.StreamLayer(),
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  newHclog(n.log, "transport"),
	})}
	n.trans = n.beats
	n.pool = transport.NewPool(n.mux.DialRPC, 5*time.Second)
	n.rpc = n.pool
	if err := n.start(Deps{FSM: f, Transport: n.trans, LogStore: store, StableStore: store, SnapshotStore: snaps, RPC: n.rpc}); err != nil {
		n.trans.(io.Closer).Close()
		return fail(err)
	}
	return n, nil
}

// raftStore is a raft log and stable store in one.
type raftStore interface {
	raft.LogStore
	raft.StableStore
}

// openStores opens raft's stores in dir, or in memory if the node is
// configured so.
func (n *Node) openStores(dir string) (raftStore, raft.SnapshotStore, error) {
	if n.cfg.InMemory {
		return raft.NewInmemStore(), raft.NewInmemSnapshotStore(), nil
	}
	db := filepath.Join(dir, "raft.db")
	var store *raftboltdb.BoltStore
	err := guarded(func() (err error) {
		store, err = raftboltdb.New(raftboltdb.Options{Path: db})
		return err
	})
	if err != nil {
		if ro := readOnly(n.cfg.DataDir, err); ro != nil {
			return nil, nil, ro
		}
		if notDamage(err) {
			return nil, nil, fmt.Errorf("cluster: raft store %s: %w", db, err)
		}
		return nil, nil, damaged(dir, db, err)
	}
	n.stores = append(n.stores, store)
	n.damage.raftDir, n.damage.db = dir, db
	n.own = &damageStore{raftStore: store, latch: n.damage}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, newHclog(n.log, "snapshots"))
	if err != nil {
		if ro := readOnly(n.cfg.DataDir, err); ro != nil {
			return nil, nil, ro
		}
		return nil, nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	parked := &damageStore{raftStore: store, latch: n.damage, raft: true}
	return &spaceStore{raftStore: parked, dataDir: n.cfg.DataDir, ctx: n.ctx, log: n.log}, snaps, nil
}

// advertiseAddr picks the address peers use to reach the cluster port.
func advertiseAddr(configured string, bound net.Addr) (net.Addr, error) {
	if configured != "" {
		a, err := net.ResolveTCPAddr("tcp", configured)
		if err != nil {
			return nil, fmt.Errorf("cluster config: AdvertiseAddr %q: %w", configured, err)
		}
		if a.IP == nil || a.IP.IsUnspecified() {
			return nil, fmt.Errorf("cluster config: AdvertiseAddr %q must name a host", configured)
		}
		return a, nil
	}
	tcp := bound.(*net.TCPAddr)
	if !tcp.IP.IsUnspecified() {
		return tcp, nil
	}
	ip, err := firstNonLoopback()
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot pick an address to advertise (set one): %w", err)
	}
	return &net.TCPAddr{IP: ip, Port: tcp.Port}, nil
}

func firstNonLoopback() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP, nil
		}
	}
	return net.IPv4(127, 0, 0, 1), nil
}

// start creates raft, bootstraps if asked and allowed, and starts the
// batcher.
func (n *Node) start(deps Deps) error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.MaxAppendEntries = n.cfg.MaxAppendEntries
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.Logger = newHclog(n.log, "raft")
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("cluster: raft config: %w", err)
	}
	n.space, _ = deps.LogStore.(*spaceStore)
	hasState, err := raft.HasExistingState(deps.LogStore, deps.StableStore, deps.SnapshotStore)
	if err != nil {
		return fmt.Errorf("cluster: reading raft state: %w", err)
	}
	ids := &idKeeper{stable: deps.StableStore, log: n.log}
	if b, err := deps.StableStore.Get([]byte(clusterIDStableKey)); err == nil {
		ids.kept = string(b)
	}
	var r *raft.Raft
	err = guarded(func() (err error) {
		r, err = raft.NewRaft(rc, &raftFSM{f: deps.FSM, reqs: n.reqs, ids: ids}, deps.LogStore, deps.StableStore,
			deps.SnapshotStore, withContacts(deps.Transport, &n.contacts))
		return err
	})
	if err != nil {
		if n.space != nil && n.cfg.DataDir != "" { // the raft state of a data dir: say which and how to recover
			dir := filepath.Join(n.cfg.DataDir, "raft")
			return damaged(dir, dir, fmt.Errorf("raft could not start on it: %w", err))
		}
		return fmt.Errorf("cluster: starting raft: %w", err)
	}
	n.raft, n.logs, n.stable = r, deps.LogStore, deps.StableStore
	n.damage.running.Store(true)
	if n.own != nil {
		n.logs, n.stable = n.own, n.own
	}
	n.caught.index = r.LastIndex() // what CaughtUp waits for the FSM to apply
	n.hasState = hasState
	n.holdsLog = hasState && r.LastIndex() > 0
	switch {
	case n.holdsLog:
		n.log.Info("raft state found; rejoining the cluster it belongs to")
	case hasState:
		n.log.Info("raft state holds a term only, no log: this node holds nothing of a cluster, and is added " +
			"to one as a fresh node is")
	case n.cfg.Bootstrap:
		n.log.Info("no raft state; bootstrapping a new cluster", "address", string(deps.Transport.LocalAddr()))
		err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: deps.Transport.LocalAddr(),
		}}}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			r.Shutdown()
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	default:
		n.log.Debug("no raft state and not asked to bootstrap")
	}
	n.electIfSoleVoter()
	n.batch = newBatcher(r, n.cfg.ApplyTimeout)
	n.work.goRun(func() { n.batch.run(n.ctx) })
	n.work.goRun(func() { n.watchLeader(n.ctx) })
	n.work.goRun(func() { n.watchLeaderSilence(n.ctx) })
	close(n.ready)
	return nil
}

// serveConn serves one RPC connection accepted on the cluster port.
func (n *Node) serveConn(c net.Conn) {
	if !n.work.goRun(func() { transport.ServeConn(n.ctx, c, n.HandleRPC) }) {
		c.Close() // closing
	}
}

// HasState reports whether the node found raft state when it started, so
// it belongs to a cluster already and must never bootstrap.
func (n *Node) HasState() bool { return n.hasState }

// StartedOnLog reports whether the node started on raft state that holds
// log entries or a snapshot: a cluster's history, which another
// cluster's raft would take for its own. A fresh node killed as a leader
// first reached it keeps raft's term (and vote) only: raft counts that as
// state, so the node never bootstraps, but it holds nothing of a
// cluster, and joins as a fresh node does.
func (n *Node) StartedOnLog() bool { return n.holdsLog }

// Bootstrap starts a new cluster whose voters are servers (ID and address
// each). Every server must be given the same list; a node that has raft
// state refuses.
func (n *Node) Bootstrap(servers []RaftServer) error {
	var cfg raft.Configuration
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	if err := n.raft.BootstrapCluster(cfg).Error(); err != nil {
		return err
	}
	n.electIfSoleVoter()
	return nil
}

// FSM returns the node's state machine, for local reads and watches.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// ID returns the node's raft ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the address peers reach this node at.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// IsLeader reports whether this node leads the cluster.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderContact returns when this node last heard from a leader: if it
// leads, the last time a quorum of the voters (itself included) answered
// it in its term (see contacts), so that a leader cut off from the others
// says so before raft makes it step down; if it follows a leader, its last
// contact with it; if it led and has heard of no leader since, the last
// time a quorum answered it then (raft counts stepping down as a contact);
// the zero time if it never had one. A node whose leader contact is old
// may be cut off from the quorum.
func (n *Node) LeaderContact() time.Time {
	if n.IsLeader() {
		return n.quorumContact(n.raft.CurrentTerm())
	}
	if id, _ := n.Leader(); id != "" && id != n.cfg.NodeID {
		n.contacts.follow(n.raft.CurrentTerm())
	} else if led := n.contacts.ledTerm(); led > 0 {
		return n.quorumContact(led)
	}
	return n.raft.LastContact()
}

// Leader returns the leader's ID and address, empty if unknown.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Close shuts the node down: raft, the cluster port and every goroutine.
// Calls in progress end first (writes and reads waiting for a leader give
// up at once, with ErrClosed), while raft still runs (see gate). It is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.work.close()
		var errs []error
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.beats != nil {
			n.beats.closeBeats() // before the stores close (see heartbeatGate)
		}
		if n.mux != nil {
			if c, ok := n.trans.(io.Closer); ok {
				errs = append(errs, c.Close())
			}
			errs = append(errs, n.mux.Close())
			n.pool.Close()
		}
		for _, c := range n.stores {
			errs = append(errs, c.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// DirHasState reports whether the raft directory of dataDir (see Open)
// holds raft state: a term, a log entry or a snapshot, what makes a node
// refuse to bootstrap. A directory that is missing, or that Open made but
// raft never wrote to (a fresh node stopped before a cluster reached
// it), holds none. It opens the stores as Open does, so no node may run
// on dataDir meanwhile.
func DirHasState(dataDir string) (bool, error) {
	dir := filepath.Join(dataDir, "raft")
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("cluster: %w", err)
	}
	if err := checkState(dir); err != nil {
		return false, err // damaged state is refused here as Open would
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if ro := readOnly(dataDir, err); ro != nil {
		return false, ro
	}
	if err != nil {
		return false, fmt.Errorf("cluster: raft store %s: %w", filepath.Join(dir, "raft.db"), err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, newHclog(slog.New(slog.DiscardHandler), "snapshots"))
	if err != nil {
		return false, fmt.Errorf("cluster: snapshot store %s: %w", dir, err)
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return false, fmt.Errorf("cluster: reading the raft state in %s: %w", dir, err)
	}
	return has, nil
}
