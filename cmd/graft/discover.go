package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/discovery"
)

const (
	// rememberedPeersFile is the cluster server's file of the members'
	// gossip addresses, in the data dir: a node that has it is not fresh.
	rememberedPeersFile = "gossip-peers.json"
	// An address heard but not in the ring is tried again after
	// rejoinFirst, doubling to rejoinMost.
	rejoinFirst = time.Second
	rejoinMost  = 30 * time.Second
	// conflictLogEvery is how often another cluster of this key is named.
	conflictLogEvery = 10 * time.Minute
)

// discoverySetting decides --discover: on by default with no --join and
// no --bootstrap-expect, when the gossip address is reachable from other
// hosts and its port fixed; asked for when it cannot work, it is refused.
func (o *clusterOptions) discoverySetting(explicit, on, off bool) error {
	if explicit && on && off {
		return usageError("--discover and --no-discover: give one")
	}
	_, err := o.announceAddr()
	switch {
	case off || explicit && !on:
		o.discover = false
	case explicit && o.bootstrapExpect > 0:
		return usageError("--discover with --bootstrap-expect: give the nodes one way to form the cluster")
	case explicit && err != nil:
		return usageError("--discover: %v", err)
	case explicit:
		o.discover, o.discoverAsked = true, true
	default:
		o.discover = err == nil && len(o.join) == 0 && o.bootstrapExpect == 0
	}
	return nil
}

// announceAddr is the gossip address other hosts reach this node at, as
// the cluster server will advertise it: --advertise-addr, else the bound
// host, else the host's first non-loopback IPv4 address.
func (o clusterOptions) announceAddr() (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(o.gossipAddr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, _ := strconv.Atoi(portText)
	if port == 0 {
		return netip.AddrPort{}, errors.New("the gossip port is chosen when bound (--gossip-addr port 0): there is no address to announce")
	}
	if o.advertiseAddr != "" {
		host = o.advertiseAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.IsUnspecified() {
		if ip, err = firstHostIPv4(); err != nil {
			return netip.AddrPort{}, err
		}
	}
	if ip.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("the gossip address %s is loopback: no other host could join it", ip)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

// firstHostIPv4 is the address the cluster server advertises when bound
// to every address: the host's first non-loopback IPv4 address.
func firstHostIPv4() (netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			ip, _ := netip.AddrFromSlice(ipn.IP.To4())
			return ip, nil
		}
	}
	return netip.Addr{}, errors.New("the host has no non-loopback IPv4 address to announce")
}

// freshDataDir reports whether dir holds neither raft state nor
// remembered peers: a node that may bootstrap a cluster. A raft
// directory with no state in it (no term, no log, no snapshot: a joiner
// stopped before a cluster reached it) leaves the node fresh.
func freshDataDir(dir string) (bool, error) {
	if _, err := os.Lstat(filepath.Join(dir, rememberedPeersFile)); !errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	has, err := raftnode.DirHasState(dir)
	if err != nil {
		return false, fmt.Errorf("discovery: %w", err)
	}
	return !has, nil
}

// hasKey reports whether the node was given a key or keeps one.
func hasKey(o clusterOptions, dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, tokenFile))
	return o.token != nil || !errors.Is(err, fs.ErrNotExist)
}

// agentDiscovery is the agent's beacon, and what runs it and follows it.
type agentDiscovery struct {
	b    *discovery.Beacon
	addr string // announced
	log  *slog.Logger
	stop func()
	// sawLogged is when follow last said that this fresh node waits for
	// a cluster it heard, gone quiet since.
	sawLogged time.Time
}

// runBeacon opens the multicast group on addr's interface and runs a
// beacon on it until the returned discovery's stop.
func runBeacon(o agentOptions, addr netip.AddrPort, key []byte, fresh bool, log *slog.Logger) (*agentDiscovery, error) {
	conn, err := discovery.ListenMulticast(discovery.DefaultGroupAddr(), addr.Addr())
	if err != nil {
		return nil, fmt.Errorf("discovery: %w (run with --no-discover, or --join a member)", err)
	}
	b, err := discovery.New(discovery.Config{ClusterName: o.clusterName, NodeName: o.hostname, Addr: addr.String(),
		Key: key, Fresh: fresh, Conn: conn, Logger: log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	started := time.Now()
	d := &agentDiscovery{b: b, addr: addr.String(), log: log}
	stopRun := goRun(func(ctx context.Context) error { return b.Run(ctx) },
		func(err error) { log.Error("discovery stopped", "err", err) })
	d.stop = func() {
		stopRun()
		st := b.Stats() // what a test of real hosts counts
		log.Info("discovery stopped", "sent", st.Sent, "received", st.Received, "accepted", st.Accepted,
			"ignored", st.Ignored, "ran_for", time.Since(started).Round(time.Millisecond))
	}
	return d, nil
}

// lookFirst looks for running clusters (see lookForClusters) when
// discovery is on and the node has no key and a fresh data dir.
func lookFirst(ctx context.Context, o agentOptions, dir string, log *slog.Logger) error {
	addr, err := o.announceAddr()
	if !o.discover || err != nil || hasKey(o.clusterOptions, dir) {
		return nil
	}
	if fresh, err := freshDataDir(dir); err != nil || !fresh {
		return err
	}
	return lookForClusters(ctx, o, addr, log)
}

// lookForClusters listens for one settle window, for a node with no key,
// and says which clusters it saw and how to join one, before the node
// makes a key and starts a cluster of its own.
func lookForClusters(ctx context.Context, o agentOptions, addr netip.AddrPort, log *slog.Logger) error {
	d, err := runBeacon(o, addr, nil, false, log)
	if err != nil && !o.discoverAsked {
		log.Warn("discovery cannot start on this host: not looking for a running cluster", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer d.stop()
	log.Info("discovery: this node has no key; looking for a running cluster before starting its own")
	if _, err := d.b.Settle(ctx); err != nil {
		return err
	}
	for _, s := range d.b.Sightings() {
		log.Warn("discovery: saw a cluster on this network, which this node cannot join without its key: "+
			"it starts a cluster of its own instead. To join that one, stop this agent, then start it with that "+
			"cluster's key and the member's address (or, on this running agent, run `GRAFT_TOKEN=<its key> graft join "+
			s.Addr+"`)", "cluster_name", s.Cluster, "member", s.Node, "member_gossip_addr", s.Addr,
			"join_command", "GRAFT_TOKEN=<its key> graft run --join "+s.Addr)
	}
	return nil
}

// startDiscovery runs the beacon with the cluster key's derived key and,
// for a fresh node with nothing to join, waits for the forming decision:
// the seeds to join, or none to bootstrap.
func startDiscovery(ctx context.Context, o agentOptions, dir string, key clusterKey, log *slog.Logger) (*agentDiscovery, []string, error) {
	addr, err := o.announceAddr()
	if err != nil {
		return nil, nil, err
	}
	secret, err := discovery.DeriveKey([]byte(key.tok.Secret()))
	if err != nil {
		return nil, nil, err
	}
	fresh, err := freshDataDir(dir)
	if err != nil {
		return nil, nil, err
	}
	fresh = fresh && len(o.join) == 0 && !key.created
	d, err := runBeacon(o, addr, secret, fresh, log)
	if err != nil && !o.discoverAsked {
		log.Warn("discovery cannot start on this host: going on without it (give --join, or fix the network and "+
			"pass --discover to require it)", "err", err)
		return nil, o.join, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !fresh {
		return d, o.join, nil
	}
	log.Info("discovery: a fresh node with the cluster's key and nothing to join: listening for its peers",
		"gossip_addr", addr, "group", discovery.DefaultGroup)
	dec, err := d.b.Settle(ctx)
	if err != nil {
		d.stop()
		return nil, nil, fmt.Errorf("discovery: stopped while listening for peers: %w", err)
	}
	if dec.Step == discovery.Bootstrap {
		log.Info("discovery: this node starts the cluster; the fresh nodes it hears join it")
		return d, nil, nil
	}
	log.Info("discovery: joining the cluster through the nodes heard", "join", dec.Join, "cluster_id", dec.Cluster)
	return d, dec.Join, nil
}

// follow keeps the beacon's state that of the current server, joins the
// peers of its cluster it hears but does not see in the ring (a peer
// whose address changed, one restarted, a cluster a waiting fresh node
// hears of), and names other clusters of its key, which it never merges.
// A fresh node still waiting to be added keeps deciding, bootstraps its
// server when the forming rule says so (see formLate), and makes sure the
// cluster it decided to join knows of it (see tellCluster). current
// returns the running server, or nil while none runs.
func (d *agentDiscovery) follow(ctx context.Context, current func() *cluster.Server) {
	tried, told := map[string]*backoff{}, map[string]*backoff{}
	named := map[string]time.Time{}
	tick := time.NewTicker(rejoinFirst)
	defer tick.Stop()
	for {
		changed := d.b.Changed()
		if srv := current(); srv != nil {
			d.formLate(srv)
			id := srv.ClusterID()
			d.b.SetState(belongsToCluster(srv), id)
			if addr := srv.GossipAddr(); addr != d.addr {
				d.log.Warn("discovery: the gossip port advertises another address than was announced; announcing it",
					"announced", d.addr, "gossip_addr", addr)
				d.addr = addr
				d.b.SetAddr(addr)
			}
			dec := d.b.Decision()
			d.joinMissing(srv, dec, tried)
			d.tellCluster(srv, dec, told)
			d.nameConflicts(id, dec.Conflicts, named)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// belongsToCluster reports whether the server belongs to a cluster: it knows
// the cluster's ID, started on a cluster's log, or holds one (it
// bootstrapped, or a leader added it). A node that holds raft's term
// only belongs to none: it waits to be added, and starts none.
func belongsToCluster(srv *cluster.Server) bool {
	node := srv.Node()
	return srv.ClusterID() != "" || node.StartedOnLog() || node.LastIndex() > 0
}

// formLate bootstraps the server of a fresh node that decided to join
// but is in no cluster yet, when the forming rule now says this node
// starts the cluster: the candidate it was to join went away before it
// bootstrapped, and the fresh nodes that named it name this one now
// (see discovery.Beacon.Act). Those already in its gossip ring are then
// added by its reconciler; the others join it when they hear it.
func (d *agentDiscovery) formLate(srv *cluster.Server) {
	if belongsToCluster(srv) || srv.Node().HasState() {
		return
	}
	dec := d.b.Act()
	if dec.SawCluster && time.Since(d.sawLogged) >= conflictLogEvery {
		d.sawLogged = time.Now()
		d.log.Warn("discovery: the node this one was to join is gone, but this node heard a cluster of its key, " +
			"gone quiet since: it starts no other cluster, and waits to hear that one again")
	}
	if dec.Step != discovery.Bootstrap {
		return
	}
	d.log.Info("discovery: the node this one was to join is gone before it started the cluster, and the fresh " +
		"nodes heard name this one instead: it starts the cluster")
	if err := srv.BootstrapFresh(); err != nil {
		d.log.Warn("discovery: could not start the cluster", "err", err)
	}
}

// tellCluster makes sure that the nodes of the cluster a fresh node
// decided to join (the bootstrapped ones among dec's) know of it while it
// waits to be added: it joins each directly (a join exchanges the two
// nodes' member lists), even one it already sees in its ring, and again
// after a backoff (see rejoinFirst) while it is not added. Seeing a node
// in its ring through another member does not mean that node sees this
// one: memberlist relays the news of a node a few times only, to random
// members, and repairs what was lost every 30 s. Fresh nodes that joined
// each other before their candidate bootstrapped were thus added by its
// leader, which learned of them through a single relay, up to a minute
// late.
func (d *agentDiscovery) tellCluster(srv *cluster.Server, dec discovery.Decision, told map[string]*backoff) {
	if belongsToCluster(srv) || dec.Step != discovery.Join {
		clear(told)
		return
	}
	booted := map[string]bool{}
	for _, p := range d.b.Peers() {
		booted[p.Addr] = p.Bootstrapped
	}
	due := dueAddrs(dec.Join, told, func(a string) bool { return !booted[a] })
	if len(due) == 0 {
		return
	}
	if n, err := srv.Join(due); err != nil {
		d.log.Info("discovery: could not reach the cluster's nodes heard, to be added", "addrs", due, "err", err)
	} else {
		d.log.Info("discovery: told the cluster's nodes heard of this node, to be added", "addrs", due, "answered", n)
	}
}

// backoff is when an address heard may be tried again.
type backoff struct {
	next time.Time
	wait time.Duration
}

// dueAddrs returns the addresses of addrs not skipped whose backoff in
// state has passed (or that have none yet), and moves each one's next try
// on, its wait doubling from rejoinFirst to rejoinMost.
func dueAddrs(addrs []string, state map[string]*backoff, skip func(string) bool) []string {
	var due []string
	now := time.Now()
	for _, a := range addrs {
		b := state[a]
		if skip(a) || b != nil && now.Before(b.next) {
			continue
		}
		if b == nil {
			b = &backoff{wait: rejoinFirst / 2}
			state[a] = b
		}
		b.wait = min(2*b.wait, rejoinMost)
		b.next = now.Add(b.wait)
		due = append(due, a)
	}
	return due
}

// joinMissing joins the addresses the decision names that no live member
// has, each again after a backoff (see rejoinFirst).
func (d *agentDiscovery) joinMissing(srv *cluster.Server, dec discovery.Decision, tried map[string]*backoff) {
	if dec.Step != discovery.Join && dec.Step != discovery.Member {
		return
	}
	alive := map[string]bool{srv.GossipAddr(): true}
	for _, m := range srv.Members() {
		if m.Gossip == "alive" {
			alive[m.GossipAddr] = true
		}
	}
	for a := range tried {
		if alive[a] {
			delete(tried, a) // in: if it goes, it is tried at once
		}
	}
	missing := dueAddrs(dec.Join, tried, func(a string) bool { return alive[a] })
	if len(missing) == 0 {
		return
	}
	if n, err := srv.Join(missing); err != nil {
		d.log.Info("discovery: could not join peers heard", "addrs", missing, "err", err)
	} else {
		d.log.Info("discovery: joined peers heard", "addrs", missing, "answered", n)
	}
}

// nameConflicts logs, loudly and at most every conflictLogEvery for each,
// the other clusters of this key heard.
func (d *agentDiscovery) nameConflicts(own string, peers []discovery.Peer, named map[string]time.Time) {
	byID := map[string][]string{}
	for _, p := range peers {
		byID[p.ClusterID] = append(byID[p.ClusterID], p.Name+"@"+p.Addr)
	}
	for id, members := range byID {
		if time.Since(named[id]) < conflictLogEvery {
			continue
		}
		named[id] = time.Now()
		slices.Sort(members)
		d.log.Error("discovery: another cluster with this cluster's key and name runs on this network; the two are "+
			"never merged. Keep one: on each node of the other, run `graft leave`, stop it, and start it on an "+
			"empty data dir with this key (it then joins this cluster)", "cluster_id", id, "own_cluster_id", own,
			"members", strings.Join(members, ", "))
	}
}

// chain returns a function that calls fns in order.
func chain(fns ...func()) func() {
	return func() {
		for _, f := range fns {
			f()
		}
	}
}
