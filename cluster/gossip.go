package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/graftcm/graft/cluster/internal/loglimit"
	"github.com/graftcm/graft/internal/msgpackcheck"
	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is what a node tells the others about itself through gossip.
type Meta struct {
	// Cluster is the cluster's name: nodes of different names ignore each
	// other, so several clusters can share a network.
	Cluster string `msgpack:"c"`
	// ClusterID identifies a bootstrapped cluster; empty on a fresh node.
	ClusterID string `msgpack:"id,omitempty"`
	// RaftAddr is the node's cluster port.
	RaftAddr string `msgpack:"r"`
	// Expect is the node's --bootstrap-expect, 0 if none; ExpectSet names
	// the set of servers it would bootstrap with (a hash), once it sees
	// exactly that many.
	Expect    int    `msgpack:"e,omitempty"`
	ExpectSet string `msgpack:"es,omitempty"`
	// Version is graft's version on the node.
	Version string `msgpack:"v,omitempty"`
	// Leaving is set by a node that is leaving gracefully, just before it
	// tells the ring: every node then records its departure as a leave,
	// not a death (memberlist tells its delegate of both alike).
	Leaving bool `msgpack:"lv,omitempty"`
	// State is set by a node that started on raft state of its own (it
	// bootstrapped, or restarted on a log or snapshot), whose cluster ID
	// it may not know (its state does not hold it yet): two such rings
	// merge only once both know.
	State bool `msgpack:"st,omitempty"`
}

// errNoMeta marks gossip metadata that is not a graft node's.
var errNoMeta = errors.New("no graft metadata")

// decodeMeta decodes a peer's gossip metadata, saying what is wrong with
// it if it is not a graft node's.
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	switch {
	case len(b) == 0:
		return m, fmt.Errorf("%w: the metadata is empty", errNoMeta)
	case len(b) > memberlist.MetaMaxSize:
		return m, fmt.Errorf("%w: %d bytes of metadata, over memberlist's %d", errNoMeta, len(b), memberlist.MetaMaxSize)
	}
	// Checked first: msgpack allocates what a string's length claims, up
	// to a megabyte at a time, before it finds the bytes missing.
	if err := msgpackcheck.Check(b); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", errNoMeta, err)
	}
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", errNoMeta, err)
	}
	if m.RaftAddr == "" {
		return Meta{}, fmt.Errorf("%w: no cluster port address (field %q)", errNoMeta, "r")
	}
	return m, nil
}

// GossipConfig tunes failure detection. The figures trade the time to
// declare a crashed node dead against false alarms on a loaded network. N
// is the number of nodes in the ring; memberlist's own constants are noted
// where a formula uses them.
type GossipConfig struct {
	// ProbeInterval is how often this node probes one other node, picked
	// round-robin over a shuffled list: every node is probed about once per
	// N intervals by each of the others, so a crashed node gets its first
	// failed probe within about ProbeInterval.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for the direct ack before it
	// asks 3 other nodes to probe indirectly (and tries TCP); it must
	// exceed the network's worst round trip, and be under ProbeInterval.
	ProbeTimeout time.Duration
	// SuspicionMult sets how long a suspect has to refute before it is
	// declared dead: SuspicionMult * max(1, log10(N)) * ProbeInterval, cut
	// down from 6 times that as other nodes confirm the suspicion. A
	// crashed node is thus dead after about ProbeInterval + that timeout.
	SuspicionMult int
	// GossipInterval is how often this node sends queued updates (joins,
	// suspicions, deaths, metadata) to 3 random nodes; an update reaches
	// everyone in about log(N) intervals, and is retransmitted
	// 4 * ceil(log10(N+1)) times.
	GossipInterval time.Duration
	// PushPullInterval is how often this node syncs its whole member list
	// with one random node over TCP, repairing anything gossip lost; above
	// 32 nodes memberlist stretches it by ceil(log2(N) - log2(32)) + 1.
	PushPullInterval time.Duration
	// TCPTimeout bounds each TCP exchange: a push/pull, a join, the TCP
	// fallback of a probe.
	TCPTimeout time.Duration
	// DeadNodeReclaimTime is how long a node must have been dead before
	// it may come back from another address (its IP changed): shorter
	// than the dead-server grace, so that a moved node takes its raft
	// seat back before the leader gives it away.
	DeadNodeReclaimTime time.Duration
	// GossipToTheDeadTime is how long gossip still reaches dead nodes;
	// after it, only the server's reconnect loop brings them back.
	GossipToTheDeadTime time.Duration
}

// LANGossip is memberlist's LAN tuning: probes every second with a 500ms
// timeout, and a suspect has 4 probe intervals (scaled by log10 of the
// cluster size, at least 1) to refute before it is dead. A crashed node is
// thus declared dead in about 5 seconds in clusters of up to ten nodes.
// Shorter figures detect faster but turn a long GC pause or a saturated
// link into a false death; a false death costs little here (semaphore slots
// are released only after ServerConfig.ReleaseGrace, raft seats only after
// DeadServerGrace), but it is still noise.
func LANGossip() GossipConfig {
	return GossipConfig{
		ProbeInterval:       time.Second,
		ProbeTimeout:        500 * time.Millisecond,
		SuspicionMult:       4,
		GossipInterval:      200 * time.Millisecond,
		PushPullInterval:    30 * time.Second,
		TCPTimeout:          10 * time.Second,
		DeadNodeReclaimTime: 10 * time.Second,
		GossipToTheDeadTime: 30 * time.Second,
	}
}

// TestGossip is for in-process tests: the LAN tuning ten times faster
// (a crashed node is dead in about 0.3 s), with a suspect given 2 probe
// intervals instead of 4, and the slow repairs (push/pull, reclaiming a
// dead node's name, gossip to the dead) thirty times faster (reclaiming a
// name: one second), so tests of
// restarts and address changes do not wait out LAN-scale periods.
func TestGossip() GossipConfig {
	c := LANGossip().scaled(10)
	c.SuspicionMult = 2
	c.PushPullInterval /= 3
	c.DeadNodeReclaimTime = time.Second
	c.GossipToTheDeadTime /= 3
	return c
}

// scaled returns c with every duration divided by f.
func (c GossipConfig) scaled(f time.Duration) GossipConfig {
	for _, d := range []*time.Duration{&c.ProbeInterval, &c.ProbeTimeout, &c.GossipInterval, &c.PushPullInterval,
		&c.TCPTimeout, &c.DeadNodeReclaimTime, &c.GossipToTheDeadTime} {
		*d /= f
	}
	return c
}

// memberDelegate answers memberlist's callbacks for a Server.
type memberDelegate struct {
	s *Server
}

func (d memberDelegate) NodeMeta(limit int) []byte {
	b, err := msgpack.Marshal(d.s.localMeta())
	if err != nil || len(b) > limit {
		return nil
	}
	return b
}

func (d memberDelegate) NotifyMsg([]byte)                           {}
func (d memberDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d memberDelegate) LocalState(bool) []byte                     { return nil }
func (d memberDelegate) MergeRemoteState([]byte, bool)              {}

// NotifyMerge refuses to merge with nodes of another cluster, or of a
// cluster not known yet (see compatible). Two nodes that both started on
// raft state of their own thus merge once both know their clusters' IDs,
// and then only if they are the same.
func (d memberDelegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.s.compatible(p); err != nil {
			d.s.logRefusal(p.Name, err)
			d.s.noteRefusal(err)
			return err
		}
	}
	return nil
}

// NotifyAlive keeps nodes of other clusters, and nodes that started on
// raft state of a cluster they cannot name yet, out of the member list
// (see compatible).
func (d memberDelegate) NotifyAlive(peer *memberlist.Node) error {
	return d.s.compatible(peer)
}

// NotifyJoin, NotifyLeave and NotifyUpdate record the change and wake the
// reconciler. They must not block.
func (d memberDelegate) NotifyJoin(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	ok := err == nil
	d.s.goneMu.Lock()
	if ok {
		d.s.ring[n.Name] = ringEntry{meta: meta, addr: n.Address()}
		d.s.addrs[n.Name] = n.Address()
	}
	delete(d.s.gone, n.Name)
	delete(d.s.departed, n.Name) // it is back: it may be added again
	d.s.goneMu.Unlock()
	d.s.kick()
	d.s.kickPeers()
	if ok && n.Name != d.s.cfg.Raft.NodeID {
		select {
		case d.s.joinWake <- struct{}{}:
		default:
		}
	}
}

// NotifyLeave records a node gone from the ring. memberlist calls it for a
// death and a graceful leave alike (and the Node it passes does not carry
// the state it recorded), so a leave is known from the node's last
// metadata, which says it was leaving, or, on the leader, from its request
// to be removed.
func (d memberDelegate) NotifyLeave(n *memberlist.Node) {
	meta, _ := decodeMeta(n.Meta)
	d.s.goneMu.Lock()
	prev, wasUp := d.s.ring[n.Name]
	delete(d.s.ring, n.Name)
	_, left := d.s.departed[n.Name]
	left = left || meta.Leaving || wasUp && prev.meta.Leaving
	d.s.gone[n.Name] = goneNode{left: left, at: time.Now(), meta: meta}
	d.s.goneMu.Unlock()
	d.s.log.Info("node left the ring", "peer", n.Name, "graceful", left)
	d.s.kick()
}

func (d memberDelegate) NotifyUpdate(n *memberlist.Node) {
	if meta, err := decodeMeta(n.Meta); err == nil {
		d.s.goneMu.Lock()
		if _, up := d.s.ring[n.Name]; up {
			d.s.ring[n.Name] = ringEntry{meta: meta, addr: n.Address()}
			d.s.addrs[n.Name] = n.Address()
		}
		d.s.goneMu.Unlock()
	}
	d.s.kick()
}

// compatible reports why peer cannot be in this node's cluster, if it
// cannot: another cluster name, another cluster ID when both know theirs,
// or raft state of a cluster one of them cannot name yet. A node that
// started on raft state of its own (State) but does not know its
// cluster's ID yet may be of any cluster: a leader that took it for a
// fresh node would add it, its log and all, to its raft. memberlist asks
// each side of a merge on its own, and a member that joined fresh (State
// unset) would otherwise let such a node in, and pass it on to the
// others, so every node of a cluster (one that knows its ID, whatever its
// State) refuses it; only a fresh node of no cluster yet lets it in (it
// joins that node's cluster, as a fresh node does). Such a node itself
// lets in nobody of a cluster, and no other such node, until it knows its
// ID.
func (s *Server) compatible(peer *memberlist.Node) error {
	if peer.Name == s.cfg.Raft.NodeID {
		return nil
	}
	m, err := decodeMeta(peer.Meta)
	if err != nil {
		return fmt.Errorf("node %s sent %w", peer.Name, err)
	}
	mine := s.localMeta()
	switch {
	case m.Cluster != mine.Cluster:
		return fmt.Errorf("node %s belongs to cluster %q, this node to %q", peer.Name, m.Cluster, mine.Cluster)
	case m.ClusterID != "" && mine.ClusterID != "" && m.ClusterID != mine.ClusterID:
		return &OtherClusterError{Peer: peer.Name, ClusterID: m.ClusterID, Local: mine.ClusterID}
	case m.State && m.ClusterID == "" && (mine.State || mine.ClusterID != ""):
		return fmt.Errorf("node %s started on raft state of its own, and %w: it joins once it is", peer.Name, errIDUnknown)
	case mine.State && mine.ClusterID == "" && (m.State || m.ClusterID != ""):
		return fmt.Errorf("this node started on raft state of its own, and %w: it merges with node %s "+
			"(of cluster %q) once it is", errIDUnknown, peer.Name, m.ClusterID)
	}
	return nil
}

// logRefusal logs a merge refused, at most once per peer and kind of
// refusal every loglimit.Window (memberlist asks at every attempt, and
// Join retries a refusal for a cluster ID not known yet): another
// cluster's node at warn, a cluster ID not known yet, which passes, at
// info.
func (s *Server) logRefusal(peer string, err error) {
	var other *OtherClusterError
	kind, lvl := "other", slog.LevelWarn
	switch {
	case errors.As(err, &other):
		kind = "other cluster"
	case errors.Is(err, errIDUnknown):
		kind, lvl = "id unknown", slog.LevelInfo
	}
	ok, suppressed := s.refusalLog.Allow(kind, peer)
	if !ok {
		return
	}
	args := []any{"peer", peer, "err", err}
	if suppressed > 0 {
		args = append(args, loglimit.KeySuppressed, suppressed)
	}
	// A node that never had a peer meets another cluster's refusal on
	// its way to joining it (see OnOtherCluster): not an error.
	s.log.Log(context.Background(), lvl, "refusing to merge with a peer's ring", args...)
}

// memberlistConfig builds memberlist's configuration for a server.
func (s *Server) memberlistConfig(transport memberlist.Transport) (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = s.cfg.Raft.NodeID
	g := s.cfg.Gossip
	c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = g.ProbeInterval, g.ProbeTimeout, g.SuspicionMult
	c.GossipInterval, c.PushPullInterval, c.TCPTimeout = g.GossipInterval, g.PushPullInterval, g.TCPTimeout
	c.DeadNodeReclaimTime = g.DeadNodeReclaimTime
	c.GossipToTheDeadTime = g.GossipToTheDeadTime
	d := memberDelegate{s}
	c.Delegate, c.Events, c.Merge, c.Alive = d, d, d, d
	glog := s.log.With("component", "gossip")
	notes := loglimit.New(time.Now)
	c.Logger = log.New(slogWriter{log: glog, notes: notes}, "", 0)
	if s.cfg.Token != nil {
		kr, err := memberlist.NewKeyring(nil, s.cfg.Token.GossipKey())
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip keyring: %w", err)
		}
		c.Keyring = kr
		c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	}
	if transport != nil {
		c.Transport = transport
		return c, nil
	}
	host, port, err := splitHostPort(s.cfg.GossipBind)
	if err != nil {
		return nil, fmt.Errorf("cluster config: GossipBind: %w", err)
	}
	adv := s.cfg.GossipAdvertise
	if ip := net.ParseIP(host); adv == "" && port != 0 && (host == "" || ip != nil && ip.IsUnspecified()) {
		// Bound to every address: advertise the one the cluster port
		// advertises, so a node is reached at one address on both ports.
		if raftHost, _, err := net.SplitHostPort(s.node.Addr()); err == nil {
			adv = net.JoinHostPort(raftHost, strconv.Itoa(port))
		}
	}
	if adv != "" {
		host, port, err := splitHostPort(adv)
		if err != nil {
			return nil, fmt.Errorf("cluster config: GossipAdvertise: %w", err)
		}
		c.AdvertiseAddr, c.AdvertisePort = host, port
	}
	// memberlist's own transport would buffer what strangers send without
	// bound (see gossipNet).
	nt, err := newGossipNet(gossipNetConfig{Host: host, Port: port, Logger: c.Logger, Log: glog, Notes: notes,
		HeaderTimeout: min(gossipHeaderTimeout, g.TCPTimeout)})
	if err != nil {
		return nil, err
	}
	c.Transport = nt
	context.AfterFunc(s.ctx, nt.abortDials) // a server that stops waits for no dial
	c.BindAddr, c.BindPort = host, nt.GetAutoBindPort()
	if port == 0 { // as memberlist does when it makes the transport
		c.AdvertisePort = c.BindPort
	}
	return c, nil
}

// splitHostPort splits "host:port" with a numeric port.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return host, port, nil
}
