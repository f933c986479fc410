package discovery

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults.
const (
	// DefaultInterval is how often a node announces itself in steady
	// state: one packet per node per interval.
	DefaultInterval = 2 * time.Second
	// DefaultMaxPeers caps the peers remembered.
	DefaultMaxPeers = 256
	// DefaultMaxSkew is how far apart the clocks of a LAN's hosts may
	// be: a packet stamped further from the receiver's clock than this,
	// either way, is ignored as stale (see Config.MaxSkew).
	DefaultMaxSkew = 10 * time.Second
)

// Conn sends packets to every node of the group and receives theirs. Its
// Receive must return once Close is called. Production uses a multicast
// group (see ListenMulticast); tests may use unicast sockets.
type Conn interface {
	Send(b []byte) error
	Receive(b []byte) (n int, from netip.AddrPort, err error)
	Close() error
}

// Config configures a Beacon.
type Config struct {
	// ClusterName is announced; packets of other names are ignored.
	ClusterName string
	// NodeName is this node's name (its raft node ID): at most 255 bytes.
	NodeName string
	// Addr is this node's gossip address (the advertise address on a
	// multi-homed host), announced for others to join.
	Addr string
	// Key is DeriveKey's key, from the cluster key. Nil: the beacon only
	// looks, sends nothing and authenticates nothing: a node with no key
	// records which clusters it sees (see Sightings).
	Key []byte
	// Fresh: this node has no raft state and remembers no peers, so it
	// may bootstrap a cluster (see Decide).
	Fresh bool
	// Conn is the group; the beacon closes it when Run returns.
	Conn Conn
	// Interval is the steady-state announcement interval (default
	// DefaultInterval). Settle is the window a fresh node listens before
	// it decides (default 3 intervals); up to one Interval of jitter is
	// added. PeerTTL is how long a peer stays live without a packet
	// (default 5 intervals). MaxPeers caps the peers remembered.
	Interval time.Duration
	Settle   time.Duration
	PeerTTL  time.Duration
	MaxPeers int
	// MaxSkew (default DefaultMaxSkew) is how far the hosts' clocks may
	// be apart: a packet whose send time is further than MaxSkew from
	// now is ignored as stale, so a packet recorded and replayed once
	// its sender is forgotten is refused. A silent peer is remembered
	// for at least 2 MaxSkew + PeerTTL (see forgetAfter) for that.
	MaxSkew time.Duration
	// Rand draws the jitter; nil: a random source.
	Rand *rand.Rand
	// Logger receives the beacon's logs; nil discards them.
	Logger *slog.Logger
}

// Beacon announces this node on the group, hears the others, and decides
// how a fresh node forms or joins its cluster (see Decide).
type Beacon struct {
	cfg      Config
	log      *slog.Logger
	boot     uint64
	started  time.Time
	settleAt time.Time
	minGap   time.Duration // between two packets sent
	// The receive goroutine's: its MAC, under the key of generation
	// recvGen, and scratch space for the sum.
	recvMAC hash.Hash
	recvSum []byte
	recvGen uint64
	keyGen  atomic.Uint64 // bumped, under mu, by SetKey

	mu           sync.Mutex
	key          []byte    // the derived key: cfg.Key, or SetKey's
	sendMAC      hash.Hash // under key
	rekeyed      bool      // SetKey changed the key: this node is no longer fresh
	seq          uint64
	addr         string
	bootstrapped bool
	clashAt      time.Time // when another boot last announced this node's name
	sawCluster   bool      // a bootstrapped peer was heard (see View.SawCluster)
	clusterID    string
	candidate    string // last computed
	settled      bool   // Settle's window has passed
	peers        map[string]*peerEntry
	sightings    []Sighting
	lastSent     time.Time
	announce     bool // a change to announce
	answer       bool // a query to answer
	changed      chan struct{}
	limiter      logLimiter

	kick  chan struct{}
	stats counters
}

// counters count packets.
type counters struct {
	sent, received, accepted atomic.Uint64
	ignored                  [numReasons]atomic.Uint64
}

// Stats are a beacon's packet counts.
type Stats struct {
	Sent, Received, Accepted uint64
	Ignored                  map[string]uint64 // by reason: oversized, malformed, other_cluster...
}

// New checks cfg and returns a Beacon; Run runs it.
func New(cfg Config) (*Beacon, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("discovery: "+format, args...)) }
	switch {
	case cfg.ClusterName == "" || len(cfg.ClusterName) > maxField:
		bad("cluster name %q: want 1 to %d bytes", cfg.ClusterName, maxField)
	case cfg.NodeName == "" || len(cfg.NodeName) > maxField:
		bad("node name %q: want 1 to %d bytes", cfg.NodeName, maxField)
	case len(cfg.Addr) > maxField || cfg.Key != nil && cfg.Addr == "":
		bad("gossip address %q: want 1 to %d bytes", cfg.Addr, maxField)
	case cfg.Key != nil && len(cfg.Key) != derivedLen:
		bad("key: want the %d bytes of DeriveKey, got %d", derivedLen, len(cfg.Key))
	case cfg.Conn == nil:
		bad("no Conn")
	case cfg.Interval < 0 || cfg.Settle < 0 || cfg.PeerTTL < 0 || cfg.MaxPeers < 0 || cfg.MaxSkew < 0:
		bad("negative Interval, Settle, PeerTTL, MaxPeers or MaxSkew")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.Interval = cmpOr(cfg.Interval, DefaultInterval)
	cfg.Settle = cmpOr(cfg.Settle, 3*cfg.Interval)
	cfg.PeerTTL = cmpOr(cfg.PeerTTL, 5*cfg.Interval)
	cfg.MaxPeers = cmpOr(cfg.MaxPeers, DefaultMaxPeers)
	cfg.MaxSkew = cmpOr(cfg.MaxSkew, DefaultMaxSkew)
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now()
	b := &Beacon{cfg: cfg, log: log, boot: uint64(now.UnixNano()), started: now,
		settleAt: now.Add(cfg.Settle + time.Duration(cfg.Rand.Int64N(int64(cfg.Interval)))),
		minGap:   cfg.Interval / 4, addr: cfg.Addr, candidate: cfg.NodeName, peers: map[string]*peerEntry{},
		changed: make(chan struct{}), kick: make(chan struct{}, 1), limiter: logLimiter{every: time.Minute},
		key: cfg.Key}
	if cfg.Key != nil {
		b.recvMAC, b.sendMAC, b.recvSum = newMAC(cfg.Key), newMAC(cfg.Key), make([]byte, 0, macLen)
	}
	return b, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run announces and listens until ctx ends, then closes the Conn.
func (b *Beacon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.receive(ctx)
	}()
	err := b.sendLoop(ctx)
	b.cfg.Conn.Close()
	<-done
	return err
}

// sendLoop sends a query (which announces this node too) at start, an
// announcement on change or to answer a query, and one every Interval,
// never two within Interval/4 of each other. A looking beacon sends
// nothing.
func (b *Beacon) sendLoop(ctx context.Context) error {
	if b.cfg.Key != nil {
		b.send(kindQuery)
	}
	t := time.NewTimer(b.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-b.kick:
		}
		b.expire()
		if b.cfg.Key == nil {
			t.Reset(b.cfg.Interval)
			continue
		}
		b.mu.Lock()
		since := time.Since(b.lastSent)
		due := since >= b.cfg.Interval || (b.announce || b.answer) && since >= b.minGap
		next := b.cfg.Interval - since
		if !due && (b.announce || b.answer) {
			next = b.minGap - since
		}
		b.mu.Unlock()
		if due {
			b.send(kindAnnounce)
			next = b.cfg.Interval
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// send sends one packet of this node's current state.
func (b *Beacon) send(kind byte) {
	b.mu.Lock()
	b.seq++
	m := message{kind: kind, bootstrapped: b.bootstrapped, fresh: b.fresh(), settled: b.settled, boot: b.boot, seq: b.seq,
		sent: uint64(time.Now().UnixNano()), cluster: b.cfg.ClusterName, node: b.cfg.NodeName, addr: b.addr, clusterID: b.clusterID}
	if m.fresh {
		m.candidate = b.candidate
	}
	pkt, err := m.encode(make([]byte, 0, MaxPacket), b.sendMAC)
	b.lastSent, b.announce, b.answer = time.Now(), false, false
	b.mu.Unlock()
	if err != nil {
		b.log.Error("cannot encode an announcement", "err", err)
		return
	}
	if err := b.cfg.Conn.Send(pkt); err != nil {
		b.limiter.log(b.log, "send", slog.LevelWarn, "cannot send an announcement", "err", err)
		return
	}
	b.stats.sent.Add(1)
}

// fresh reports whether this node may still bootstrap. Under mu.
func (b *Beacon) fresh() bool { return b.cfg.Fresh && !b.bootstrapped && !b.rekeyed }

// wake makes the send loop look again.
func (b *Beacon) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// SetState records this node's membership: bootstrapped once it belongs
// to a cluster (it has raft state), clusterID once it knows it. A change
// is announced at once.
func (b *Beacon) SetState(bootstrapped bool, clusterID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bootstrapped == bootstrapped && b.clusterID == clusterID {
		return
	}
	b.bootstrapped, b.clusterID = bootstrapped, clusterID
	b.changeLocked()
}

// ErrNoKey is returned by SetKey on a beacon made with no key: it only
// looks.
var ErrNoKey = errors.New("discovery: a beacon with no key cannot take one")

// SetKey makes the beacon announce, and hear, under another key (from
// DeriveKey): the node moved to another cluster. What it heard under the
// old key is forgotten and packets under it are ignored from now on; its
// state is reset to belonging to no cluster until SetState says
// otherwise; and the node is no longer fresh (it never bootstraps). The
// change is announced at once. The same key again changes nothing.
func (b *Beacon) SetKey(key []byte) error {
	switch {
	case b.cfg.Key == nil:
		return ErrNoKey
	case len(key) != derivedLen:
		return fmt.Errorf("discovery: key: want the %d bytes of DeriveKey, got %d", derivedLen, len(key))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if hmac.Equal(key, b.key) {
		return nil
	}
	b.key, b.sendMAC = slices.Clone(key), newMAC(key)
	b.keyGen.Add(1) // the receive goroutine takes the new key at its next packet
	clear(b.peers)
	b.clashAt, b.rekeyed, b.bootstrapped, b.clusterID = time.Time{}, true, false, ""
	b.changeLocked()
	return nil
}

// SetAddr changes the gossip address announced, at once.
func (b *Beacon) SetAddr(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.addr == addr {
		return
	}
	b.addr = addr
	b.changeLocked()
}

// changeLocked records a change to announce, and tells who waits on
// Changed. Under mu.
func (b *Beacon) changeLocked() {
	b.announce = true
	b.candidate = b.decideLocked().Candidate
	close(b.changed)
	b.changed = make(chan struct{})
	b.wake()
}

// Changed returns a channel closed at the next change of the peers heard
// or of this node's state.
func (b *Beacon) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// Stats returns the beacon's packet counts.
func (b *Beacon) Stats() Stats {
	s := Stats{Sent: b.stats.sent.Load(), Received: b.stats.received.Load(), Accepted: b.stats.accepted.Load(),
		Ignored: map[string]uint64{}}
	for r := range numReasons {
		if n := b.stats.ignored[r].Load(); n > 0 {
			s.Ignored[r.String()] = n
		}
	}
	return s
}
