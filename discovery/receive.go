package discovery

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// peerEntry is a peer remembered: its last announcement, and what replay
// protection needs.
type peerEntry struct {
	Peer
	boot, seq uint64
	heard     time.Time
	from      netip.AddrPort
}

// Sighting is a cluster a node with no key heard of: nothing of it is
// authenticated.
type Sighting struct {
	Cluster string // its cluster name
	Node    string // the member that announced it
	Addr    string // that member's gossip address
}

// maxSightings caps the clusters a keyless node records.
const maxSightings = 16

// receive reads packets until ctx ends (Run then closes the Conn).
func (b *Beacon) receive(ctx context.Context) {
	buf := make([]byte, MaxPacket+1) // one more byte: an oversized packet shows
	for {
		n, from, err := b.cfg.Conn.Receive(buf)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.limiter.log(b.log, "receive", slog.LevelWarn, "cannot receive announcements", "err", err)
			select { // a broken socket must not spin
			case <-ctx.Done():
				return
			case <-time.After(b.cfg.Interval / 4):
			}
			continue
		}
		b.handle(buf[:n], from)
	}
}

// handle checks one packet and records what it says. What an
// unauthenticated packet costs is bounded and allocates nothing: its
// layout, its cluster name and its MAC are checked in place.
func (b *Beacon) handle(pkt []byte, from netip.AddrPort) {
	defer b.stats.received.Add(1) // once handled: tests wait on it
	f, r, ok := split(pkt)
	if !ok {
		b.ignore(r, from)
		return
	}
	if string(f.field(0)) != b.cfg.ClusterName {
		b.ignore(reasonOtherCluster, from)
		return
	}
	if b.cfg.Key == nil {
		b.sight(f.message())
		return
	}
	gen := b.receiveKey()
	if !f.authentic(b.recvMAC, b.recvSum) {
		b.ignore(reasonUnauthentic, from)
		return
	}
	if age := time.Since(time.Unix(0, int64(f.sent()))); age > b.cfg.MaxSkew || age < -b.cfg.MaxSkew {
		if suppressed, ok := b.count(reasonStale); ok {
			b.logIgnored(reasonStale, from, suppressed, "sent_ago", age.Round(time.Millisecond).String(),
				"max_skew", b.cfg.MaxSkew.String())
		}
		return
	}
	m := f.message()
	if m.node == b.cfg.NodeName {
		if m.boot != b.boot {
			b.ignore(reasonDuplicateName, from, "addr", m.addr)
			b.mu.Lock()
			b.clashAt = time.Now()
			b.mu.Unlock()
		}
		return // this node's own packet, looped back
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keyGen.Load() != gen { // authentic under a key SetKey has replaced since
		b.ignore(reasonUnauthentic, from, "node", m.node)
		return
	}
	if r, ok := b.record(m, from); !ok {
		b.ignore(r, from, "node", m.node)
		return
	}
	b.stats.accepted.Add(1)
	if m.kind == kindQuery {
		b.answer = true
		b.wake()
	}
}

// receiveKey gives the receive goroutine's MAC the key SetKey set last,
// if it changed, and returns that key's generation.
func (b *Beacon) receiveKey() uint64 {
	if b.keyGen.Load() == b.recvGen {
		return b.recvGen
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recvMAC, b.recvGen = newMAC(b.key), b.keyGen.Load()
	return b.recvGen
}

// record records an authentic message in the peer table; it reports why
// not if it did not. Under mu.
func (b *Beacon) record(m message, from netip.AddrPort) (reason, bool) {
	now := time.Now()
	e := b.peers[m.node]
	switch {
	case e != nil && (m.boot < e.boot || m.boot == e.boot && m.seq <= e.seq):
		return reasonReplayed, false
	case e == nil && len(b.peers) >= b.cfg.MaxPeers && !b.evictOne(now):
		return reasonPeersFull, false
	}
	p := Peer{Name: m.node, Addr: m.addr, Bootstrapped: m.bootstrapped, ClusterID: m.clusterID,
		Fresh: m.fresh, Settled: m.settled, Candidate: m.candidate}
	changed := e == nil || e.Peer != p || !b.live(e, now)
	if e == nil {
		e = &peerEntry{}
		b.peers[m.node] = e
	}
	e.Peer, e.boot, e.seq, e.heard, e.from = p, m.boot, m.seq, now, from
	if changed {
		b.viewChangedLocked()
	}
	return 0, true
}

// viewChangedLocked tells Changed's waiters, and announces this node's
// candidate if the change moved it. Under mu.
func (b *Beacon) viewChangedLocked() {
	if c := b.decideLocked().Candidate; c != b.candidate {
		b.candidate, b.announce = c, true
		b.wake()
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// live reports whether a peer was heard within PeerTTL.
func (b *Beacon) live(e *peerEntry, now time.Time) bool { return now.Sub(e.heard) < b.cfg.PeerTTL }

// forgetAfter is how long a silent peer is remembered, for replay
// protection: 3 PeerTTL, and at least until every packet it sent is
// stale (older than MaxSkew, to a receiver whose clock is up to MaxSkew
// behind its own), so that no packet of it is accepted again once it is
// forgotten: 2 MaxSkew, and a PeerTTL to spare.
func (b *Beacon) forgetAfter() time.Duration {
	return max(3*b.cfg.PeerTTL, 2*b.cfg.MaxSkew+b.cfg.PeerTTL)
}

// evictOne forgets the longest-silent peer that is no longer live, and
// reports whether there was one. Under mu.
func (b *Beacon) evictOne(now time.Time) bool {
	var oldest string
	for name, e := range b.peers {
		if !b.live(e, now) && (oldest == "" || e.heard.Before(b.peers[oldest].heard)) {
			oldest = name
		}
	}
	if oldest == "" {
		return false
	}
	delete(b.peers, oldest)
	return true
}

// expire forgets long-silent peers, and tells Changed's waiters when a
// peer stopped being live.
func (b *Beacon) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now, changed := time.Now(), false
	for name, e := range b.peers {
		if now.Sub(e.heard) >= b.forgetAfter() {
			delete(b.peers, name)
		}
		if !b.live(e, now) && now.Sub(e.heard) < b.cfg.PeerTTL+b.cfg.Interval {
			changed = true // went quiet since the last look
		}
	}
	if changed {
		b.viewChangedLocked()
	}
}

// sight records a cluster heard of by a node with no key.
func (b *Beacon) sight(m message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Sighting{Cluster: m.cluster, Node: m.node, Addr: m.addr}
	if slices.Contains(b.sightings, s) || len(b.sightings) >= maxSightings {
		return
	}
	b.sightings = append(b.sightings, s)
	close(b.changed)
	b.changed = make(chan struct{})
}

// Sightings returns what a beacon with no key heard: unauthenticated.
func (b *Beacon) Sightings() []Sighting {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sightings)
}

// ignore counts an ignored packet and logs it, at most once a minute per
// reason. Counting allocates nothing: the line is built only when logged.
func (b *Beacon) ignore(r reason, from netip.AddrPort, attrs ...any) {
	if suppressed, ok := b.count(r); ok {
		b.logIgnored(r, from, suppressed, attrs...)
	}
}

// count counts an ignored packet, and reports whether to log it and how
// many of its reason were not logged since the last. It allocates
// nothing.
func (b *Beacon) count(r reason) (suppressed int, log bool) {
	b.stats.ignored[r].Add(1)
	return b.limiter.allow(r.String())
}

// logIgnored logs an ignored packet.
func (b *Beacon) logIgnored(r reason, from netip.AddrPort, suppressed int, attrs ...any) {
	level := slog.LevelWarn
	switch r {
	case reasonOtherCluster, reasonMalformed:
		level = slog.LevelDebug // other clusters and other software share the group
	case reasonUnauthentic:
		level = slog.LevelInfo // another cluster of the same name, or a node given a wrong key
	case reasonStale:
		attrs = append(attrs, "cause", "the sender's clock and this host's differ by more than max_skew, "+
			"or the packet was recorded and replayed")
	}
	attrs = append([]any{"reason", r.String(), "from", from.String()}, attrs...)
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	b.log.Log(context.Background(), level, "ignored a discovery packet", attrs...)
}

// Peers returns the live peers, sorted by name.
func (b *Beacon) Peers() []Peer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.livePeersLocked(time.Now())
}

func (b *Beacon) livePeersLocked(now time.Time) []Peer {
	var ps []Peer
	for _, e := range b.peers {
		if b.live(e, now) {
			ps = append(ps, e.Peer)
		}
	}
	return sortedPeers(ps)
}

// Decision returns Decide's decision on the current view.
func (b *Beacon) Decision() Decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.decideLocked()
}

// decideLocked decides on the current view, and remembers whether a
// bootstrapped peer was ever heard (see View.SawCluster): it is called
// on every change of the peers heard. Under mu.
func (b *Beacon) decideLocked() Decision {
	now := time.Now()
	peers := b.livePeersLocked(now)
	b.sawCluster = b.sawCluster || slices.ContainsFunc(peers, func(p Peer) bool { return p.Bootstrapped })
	return Decide(View{Self: b.cfg.NodeName, Fresh: b.fresh(), Bootstrapped: b.bootstrapped,
		ClusterID: b.clusterID, Settled: b.settled, Frozen: b.candidate, Peers: peers,
		NameClash: !b.clashAt.IsZero() && now.Sub(b.clashAt) < b.cfg.PeerTTL, SawCluster: b.sawCluster})
}
