package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

// Bounds on what a cluster takes at production timings, generous for a
// loaded machine: the figures each test logs are what it took.
const (
	// formWait: the first node elects itself (about 2 s), the others join
	// and are promoted once caught up for 10 s.
	formWait = 90 * time.Second
	// electWait: gossip and raft notice the leader is gone (1 to 2 s),
	// then an election.
	electWait = 45 * time.Second
	// deadWait: gossip declares a node dead (5 to 7 s), the 30 s grace
	// before a dead voter loses its seat, the next reconcile.
	deadWait = 120 * time.Second
	// settleWait: anything else, a write replicated, a restart caught up.
	settleWait = 60 * time.Second
)

// pollEvery is how often a wait checks its condition.
const pollEvery = 250 * time.Millisecond

// Cluster is a test's hosts on their own network, all given one cluster
// key. Nothing runs until a test starts it.
type Cluster struct {
	t     *testing.T
	s     *suite
	net   *network
	Key   string
	Hosts []*Host
	// next is the host number of the next new address.
	next int
	// links are the pairs of hosts CutLink cut, until Heal.
	links [][2]*Host
}

// NewCluster makes n hosts, h1 to hn, each in a namespace of its own on a
// new bridge, with a data dir of its own, and one cluster key that every
// host is given. Everything is torn down when t ends; if t failed, every
// host's log is printed first.
func NewCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	s := needSuite(t)
	c := &Cluster{t: t, s: s, net: newNetwork(t, s), next: 100}
	// Not t.TempDir: a directory named after the run is removed by the
	// next run if this one crashes.
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-net%d-", tmpPrefix, s.pid, c.net.num))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for i := 1; i <= n; i++ {
		h := &Host{c: c, Name: fmt.Sprintf("h%d", i), Addr: c.net.addr(10 + i)}
		h.Dir = filepath.Join(dir, h.Name)
		h.Data = filepath.Join(h.Dir, "data")
		if err := os.MkdirAll(h.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		h.iface = c.net.attach(t, i, h.Addr)
		c.Hosts = append(c.Hosts, h)
	}
	c.Key = c.keygen()
	for _, h := range c.Hosts {
		h.Token = c.Key
	}
	t.Cleanup(c.teardown)
	return c
}

// keygen returns a new cluster key.
func (c *Cluster) keygen() string {
	c.t.Helper()
	out, err := c.Hosts[0].Graft("keygen")
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// teardown kills every agent and, if the test failed, prints every
// host's log. The network goes after it (its cleanups were registered
// first).
func (c *Cluster) teardown() {
	for _, h := range c.Hosts {
		h.teardown()
	}
	if c.t.Failed() {
		c.PrintLogs()
	}
}

// PrintLogs logs every host's log (its last 256 KiB).
func (c *Cluster) PrintLogs() {
	const most = 256 << 10
	for _, h := range c.Hosts {
		log := h.Log()
		if len(log) > most {
			log = fmt.Sprintf("[... the first %d bytes left out ...]\n%s", len(log)-most, log[len(log)-most:])
		}
		c.t.Logf("----- log of %s (%s) -----\n%s", h.Name, h.logPath(), log)
	}
}

// NewAddr gives h a new address on the network (see Host.Readdress).
func (c *Cluster) NewAddr(h *Host) string {
	c.t.Helper()
	c.next++
	h.Readdress(c.net.addr(c.next))
	return h.Addr
}

// Partition moves hosts onto the partition side of the network: they
// reach each other, and no host left on the main bridge. Their agents
// keep running.
func (c *Cluster) Partition(hosts ...*Host) {
	c.t.Helper()
	for _, h := range hosts {
		if err := h.iface.moveTo(c.net.side); err != nil {
			c.t.Fatal(err)
		}
	}
}

// CutLink cuts the link between hosts a and b: neither reaches the
// other, and both still reach every other host (a bridge node between
// them, with three hosts). Their agents keep running; neither may change
// its address until Heal.
func (c *Cluster) CutLink(a, b *Host) {
	c.t.Helper()
	c.links = append(c.links, [2]*Host{a, b})
	for _, err := range []error{a.iface.cut(b.Addr), b.iface.cut(a.Addr)} {
		if err != nil {
			c.t.Fatal(err)
		}
	}
}

// Heal puts every host back on the main bridge and joins every link cut.
func (c *Cluster) Heal() {
	c.t.Helper()
	for _, h := range c.Hosts {
		if err := h.iface.moveTo(c.net.bridge); err != nil {
			c.t.Fatal(err)
		}
	}
	for _, l := range c.links {
		for _, err := range []error{l[0].iface.uncut(l[1].Addr), l[1].iface.uncut(l[0].Addr)} {
			if err != nil {
				c.t.Fatal(err)
			}
		}
	}
	c.links = nil
}

// StartJoined starts hosts with discovery off (--no-discover): the first
// with nobody to join (it starts the cluster at once), each other one with
// --join to the first's gossip address. flags follow on every host's
// command line, then its Graph.
func (c *Cluster) StartJoined(hosts []*Host, flags ...string) {
	c.t.Helper()
	for i, h := range hosts {
		h.Args = append([]string{"--no-discover"}, flags...)
		if i > 0 {
			h.Args = append([]string{"--join", hosts[0].GossipAddr()}, h.Args...)
		}
		h.Start()
	}
}

// WriteFile writes content to name in h's directory, replacing it
// whole (a rename, as an editor saves), and returns its path.
func (h *Host) WriteFile(name, content string) string {
	t := h.c.t
	t.Helper()
	path := filepath.Join(h.Dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// WaitFor polls cond until it returns nil, and returns how long that
// took; after within it fails t with cond's last error.
func (c *Cluster) WaitFor(what string, within time.Duration, cond func() error) time.Duration {
	c.t.Helper()
	start := time.Now()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			c.t.Fatalf("no %s within %v: %v", what, within, err)
		}
		<-tick.C
	}
}

// Status is `graft status --json` on h.
func (h *Host) Status() (api.Status, error) {
	var st api.Status
	out, err := h.Graft("status", "--json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s: status --json: %w: %q", h.Name, err, out)
	}
	return st, nil
}

// Members is `graft members --json` on h, by name.
func (h *Host) Members() (map[string]api.MemberInfo, error) {
	out, err := h.Graft("members", "--json")
	if err != nil {
		return nil, err
	}
	var ms []api.MemberInfo
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		return nil, fmt.Errorf("%s: members --json: %w: %q", h.Name, err, out)
	}
	byName := map[string]api.MemberInfo{}
	for _, m := range ms {
		byName[m.Name] = m
	}
	return byName, nil
}

// Put is `graft kv put key value` on h.
func (h *Host) Put(key, value string) error {
	_, err := h.Graft("kv", "put", key, value)
	return err
}

// Get is `graft kv get key` on h: a local read.
func (h *Host) Get(key string) (string, error) {
	return h.Graft("kv", "get", key)
}

// Agreement checks that hosts are one cluster: each lists all of them,
// alive, at their current gossip addresses (and no other member alive),
// each names the same leader,
// one of them, and the raft configuration each has holds all of them with
// voters voters (any number when voters < 0). It returns the leader.
func Agreement(hosts []*Host, voters int) (*Host, error) {
	var leader string
	for _, h := range hosts {
		st, err := h.Status()
		if err != nil {
			return nil, err
		}
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return nil, fmt.Errorf("%s knows leader %q, the hosts before it %q", h.Name, st.Leader, leader)
		}
		leader = st.Leader
		if err := checkServers(h.Name, st.Servers, hosts, voters); err != nil {
			return nil, err
		}
		ms, err := h.Members()
		if err != nil {
			return nil, err
		}
		if err := checkMembers(h.Name, ms, hosts); err != nil {
			return nil, err
		}
	}
	for _, h := range hosts {
		if h.Name == leader {
			return h, nil
		}
	}
	return nil, fmt.Errorf("the leader, %q, is none of the hosts", leader)
}

// checkMembers checks that members, host name's view, holds hosts alive
// at their current gossip addresses, and no other member alive.
func checkMembers(name string, members map[string]api.MemberInfo, hosts []*Host) error {
	for _, o := range hosts {
		m, ok := members[o.Name]
		if !ok || m.Gossip != "alive" || m.GossipAddr != o.GossipAddr() {
			return fmt.Errorf("%s sees %s as %+v, want alive at %s", name, o.Name, m, o.GossipAddr())
		}
	}
	for _, m := range members {
		if m.Gossip == "alive" && !slices.ContainsFunc(hosts, func(h *Host) bool { return h.Name == m.Name }) {
			return fmt.Errorf("%s sees %+v alive, which is none of the hosts", name, m)
		}
	}
	return nil
}

// checkServers checks that servers, host name's raft configuration, holds
// exactly hosts, at their current addresses, voters of them voters (any
// number when voters < 0).
func checkServers(name string, servers []api.RaftServer, hosts []*Host, voters int) error {
	n := 0
	for _, s := range servers {
		if s.Suffrage == "voter" {
			n++
		}
		if !slices.ContainsFunc(hosts, func(h *Host) bool { return h.Name == s.ID && h.Addr+":"+clusterPort == s.Address }) {
			return fmt.Errorf("%s's raft servers %+v: %s at %s is not one of the hosts", name, servers, s.ID, s.Address)
		}
	}
	if len(servers) != len(hosts) || voters >= 0 && n != voters {
		return fmt.Errorf("%s's raft servers %+v: want %d with %d voters", name, servers, len(hosts), voters)
	}
	return nil
}

// AllRead checks that every host reads value at key.
func AllRead(hosts []*Host, key, value string) error {
	for _, h := range hosts {
		got, err := h.Get(key)
		if err != nil {
			return err
		}
		if got != value {
			return fmt.Errorf("%s reads %s=%q, want %q", h.Name, key, got, value)
		}
	}
	return nil
}

// Others returns hosts less those in but.
func Others(hosts []*Host, but ...*Host) []*Host {
	return slices.DeleteFunc(slices.Clone(hosts), func(h *Host) bool { return slices.Contains(but, h) })
}

// ByName returns the host named name among hosts.
func ByName(hosts []*Host, name string) (*Host, error) {
	for _, h := range hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return nil, errors.New("no host named " + name)
}

// Figure logs a measured figure in one greppable form.
func Figure(t *testing.T, what string, d time.Duration) {
	t.Helper()
	t.Logf("figure: %s: %.1f s", what, d.Seconds())
}
