package discovery

import (
	"cmp"
	"slices"
)

// Peer is another node of this cluster name and key, as its last
// authenticated announcement described it.
type Peer struct {
	Name string
	// Addr is its gossip address: what --join and `graft join` take.
	Addr string
	// Bootstrapped: it belongs to a cluster (it has raft state, or
	// decided to bootstrap one). ClusterID names that cluster once the
	// node knows it.
	Bootstrapped bool
	ClusterID    string
	// Fresh: it has no raft state and remembers no peers, so it may be
	// the one that bootstraps.
	Fresh bool
	// Settled: its settle window has passed, so its Candidate holds (see
	// View.Frozen).
	Settled bool
	// Candidate is the fresh node it would have bootstrap: the lowest
	// name among the fresh nodes it sees, itself included, while it sees
	// no bootstrapped one. Empty otherwise.
	Candidate string
}

// View is what the forming decision reads: this node and the live peers
// it hears.
type View struct {
	Self string
	// Fresh: this node has no raft state and remembers no peers.
	Fresh bool
	// Bootstrapped: this node belongs to a cluster (see Peer), whose ID
	// is ClusterID once known.
	Bootstrapped bool
	ClusterID    string
	// Settled: the settle window since this node started has passed.
	Settled bool
	// Frozen is the candidate this node named last, once settled. It
	// keeps naming another node than itself while that node is live,
	// fresh and names itself, even when it hears a lower one since: the
	// node it named may be bootstrapping on the strength of it.
	Frozen string
	// NameClash: another node (another boot) announces this node's name
	// lately. Two fresh nodes of one name cannot tell each other apart:
	// each would count only itself and bootstrap, so neither does.
	NameClash bool
	// SawCluster: this node has heard a bootstrapped node of its key
	// since it started, live or not now. A cluster exists: a fresh node
	// waits for it rather than start another (its bootstrapper may have
	// crashed, or been cut off, before anyone joined it).
	SawCluster bool
	Peers      []Peer // live peers, never this node
}

// Step is what a node does next.
type Step int

const (
	// Wait: look again when a packet arrives or the window ends.
	Wait Step = iota
	// Bootstrap: this node starts the cluster; the others join it.
	Bootstrap
	// Join: join the gossip ring through Join's addresses.
	Join
	// Member: this node belongs to a cluster already; Join lists the
	// addresses of its cluster's peers, Conflicts the peers of other
	// clusters of the same key.
	Member
)

var stepNames = [...]string{"wait", "bootstrap", "join", "member"}

func (s Step) String() string { return stepNames[s] }

// Decision is the forming decision.
type Decision struct {
	Step Step
	// Join: the gossip addresses to join, in the order to try them.
	Join []string
	// Candidate is the fresh node this one would have bootstrap (see
	// Peer.Candidate); it is announced.
	Candidate string
	// Cluster is the ID of the cluster Join leads to, if known.
	Cluster string
	// Waiting names, for Wait after the window, the fresh peers that do
	// not yet name this node their candidate.
	Waiting []string
	// Conflicts are bootstrapped peers of the same key in another
	// cluster than this node's: never merged.
	Conflicts []Peer
	// NameClash: this node would bootstrap but waits, since another node
	// announces its name (see View.NameClash).
	NameClash bool
	// SawCluster: this node would bootstrap but waits, since it heard a
	// cluster of its key, gone since (see View.SawCluster).
	SawCluster bool
}

// Decide is the zero-config forming rule, the same on every node:
//
//   - A node that belongs to a cluster never bootstraps: it is a Member,
//     and joins its cluster's peers it hears; bootstrapped peers of its
//     key in another cluster are Conflicts, never merged.
//   - A fresh node that hears a bootstrapped node joins: the cluster with
//     the most peers heard (then the lowest ID), all its peers heard.
//     It need not wait for the window.
//   - Otherwise a fresh node names its candidate: the lowest name among
//     the fresh nodes it hears, itself included. Until its window has
//     passed it waits. Then its candidate holds (see View.Frozen), and a
//     node that is not its own candidate joins the fresh nodes it hears,
//     its candidate first (the gossip ring is transitive, so joining any
//     of them reaches the one that bootstraps, which it then joins
//     directly too when it hears it bootstrapped); the candidate bootstraps
//     only once every fresh node it hears has settled and names it too.
//     Two nodes that hear each other, or a common peer, never both
//     bootstrap: a node that hears a lower one never names itself, and a
//     settled peer names one of them only. A node that started too late
//     to be heard by the bootstrapper hears its bootstrapped announcement
//     within its own window, and joins. This holds while packets are not
//     lost for a peer's whole lifetime (PeerTTL) one way.
//   - A fresh node that hears its own name from another boot (two nodes
//     of one name: cloned images, default host names) never bootstraps:
//     each would take the other's packets for its own and count itself
//     alone. It still joins a cluster it hears.
//   - A fresh node that has heard a bootstrapped node since it started
//     never bootstraps, even once that node has gone quiet: a cluster
//     exists (its bootstrapper may have crashed before anyone joined it),
//     and this node waits to hear it again.
//
// The rule holds after the window as well: a node that decided to join
// but is not in a cluster yet keeps deciding, and bootstraps if its
// candidate went quiet before it bootstrapped and the others name this
// node instead (see Beacon.Act).
func Decide(v View) Decision {
	if v.Bootstrapped || !v.Fresh {
		return member(v)
	}
	if d, ok := joinBootstrapped(v.Peers); ok {
		return d
	}
	fresh, candidate := freshCandidate(v)
	d := Decision{Step: Wait, Candidate: candidate, NameClash: v.NameClash}
	if !v.Settled {
		return d
	}
	if candidate != v.Self {
		slices.SortFunc(fresh, func(a, b Peer) int {
			return cmp.Or(cmp.Compare(rank(a.Name, candidate), rank(b.Name, candidate)), cmp.Compare(a.Name, b.Name))
		})
		d.Step = Join
		for _, p := range fresh {
			d.Join = append(d.Join, p.Addr)
		}
		return d
	}
	for _, p := range fresh {
		if !p.Settled || p.Candidate != v.Self {
			d.Waiting = append(d.Waiting, p.Name)
		}
	}
	slices.Sort(d.Waiting)
	switch {
	case len(d.Waiting) > 0 || v.NameClash:
	case v.SawCluster:
		d.SawCluster = true
	default:
		d.Step = Bootstrap
	}
	return d
}

// freshCandidate returns the fresh peers and the candidate: the lowest
// name among them and this node, or the frozen one (see View.Frozen).
func freshCandidate(v View) ([]Peer, string) {
	var fresh []Peer
	candidate, frozen := v.Self, false
	for _, p := range v.Peers {
		if !p.Fresh || p.Bootstrapped {
			continue
		}
		fresh = append(fresh, p)
		candidate = min(candidate, p.Name)
		frozen = frozen || v.Settled && p.Name == v.Frozen && p.Name != v.Self && p.Candidate == p.Name
	}
	if frozen {
		candidate = v.Frozen
	}
	return fresh, candidate
}

// rank puts the candidate first.
func rank(name, candidate string) int {
	if name == candidate {
		return 0
	}
	return 1
}

// member decides for a node that belongs to a cluster.
func member(v View) Decision {
	d := Decision{Step: Member, Cluster: v.ClusterID}
	for _, p := range sortedPeers(v.Peers) {
		switch {
		case p.Bootstrapped && p.ClusterID != "" && v.ClusterID != "" && p.ClusterID != v.ClusterID:
			d.Conflicts = append(d.Conflicts, p)
		case p.Bootstrapped && (p.ClusterID == v.ClusterID || p.ClusterID == "" || v.ClusterID == ""):
			d.Join = append(d.Join, p.Addr)
		}
	}
	return d
}

// joinBootstrapped picks, for a fresh node, the cluster to join among the
// bootstrapped peers: the one with the most peers heard, then the lowest
// ID (a peer that does not know its ID yet counts on its own).
func joinBootstrapped(peers []Peer) (Decision, bool) {
	count := map[string]int{}
	for _, p := range peers {
		if p.Bootstrapped {
			count[clusterKeyOf(p)]++
		}
	}
	if len(count) == 0 {
		return Decision{}, false
	}
	best := ""
	for k, n := range count {
		if best == "" || n > count[best] || n == count[best] && k < best {
			best = k
		}
	}
	d := Decision{Step: Join}
	for _, p := range sortedPeers(peers) {
		if p.Bootstrapped && clusterKeyOf(p) == best {
			d.Join = append(d.Join, p.Addr)
			d.Cluster = p.ClusterID
		}
	}
	return d, true
}

// clusterKeyOf groups bootstrapped peers by cluster: by ID, or, for one
// that does not know it yet, by name.
func clusterKeyOf(p Peer) string {
	if p.ClusterID != "" {
		return "id:" + p.ClusterID
	}
	return "node:" + p.Name
}

func sortedPeers(peers []Peer) []Peer {
	s := slices.Clone(peers)
	slices.SortFunc(s, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })
	return s
}
