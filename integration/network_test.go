package integration

import (
	"fmt"
	"strconv"
	"testing"
)

// network is one test's LAN: a bridge, and per host a network namespace
// joined to it by a veth pair, the namespace's end named eth0 with an
// address in 10.213.<net>.0/24. Nothing in the test's own namespace has an
// address on it, so two runs (or two tests) using the same addresses on
// their own bridges never meet. A second bridge, the partition side,
// takes the hosts a partition cuts off: they reach each other there, and
// no host left on the main bridge.
type network struct {
	// num is the network's number in this run, 1, 2...; prefix names
	// its namespaces and links.
	num    int
	prefix string
	bridge string
	side   string
}

// maxHosts is the most hosts a network has: a veth name must fit 15 bytes.
const maxHosts = 9

// newNetwork makes the bridges of a new network, deleted when t ends.
func newNetwork(t *testing.T, s *suite) *network {
	t.Helper()
	num := int(s.networks.Add(1))
	n := &network{num: num, prefix: fmt.Sprintf("%s%d", namePrefix, s.pid)}
	tag := strconv.FormatInt(int64(num), 36)
	n.bridge, n.side = n.prefix+"b"+tag, n.prefix+"p"+tag
	for _, br := range []string{n.bridge, n.side} {
		// mcast_snooping 0: multicast is flooded to every port, as on a
		// plain switch, whatever IGMP the hosts send.
		mustIP(t, "link", "add", "name", br, "type", "bridge", "mcast_snooping", "0")
		t.Cleanup(func() {
			if err := ipCmd("link", "del", br); err != nil {
				t.Errorf("tearing the network down: %v", err)
			}
		})
		mustIP(t, "link", "set", br, "up")
	}
	return n
}

// addr is the i-th address of the network (i from 1 to 254).
func (n *network) addr(i int) string {
	return fmt.Sprintf("10.213.%d.%d", n.num%250+1, i)
}

// iface is where a host sits on the network: its namespace and the two
// ends of its veth pair.
type iface struct {
	ns   string
	veth string // the end on the bridge; the namespace's is eth0
}

// attach makes host i's namespace, links it to the bridge and gives it
// addr; everything is deleted when t ends.
func (n *network) attach(t *testing.T, i int, addr string) iface {
	t.Helper()
	if i < 1 || i > maxHosts {
		t.Fatalf("host %d: a network has hosts 1 to %d", i, maxHosts)
	}
	tag := strconv.FormatInt(int64(n.num), 36)
	f := iface{
		ns:   fmt.Sprintf("%s-%s-h%d", n.prefix, tag, i),
		veth: fmt.Sprintf("%sv%sh%d", n.prefix, tag, i),
	}
	mustIP(t, "netns", "add", f.ns)
	t.Cleanup(func() {
		// The kernel frees a deleted namespace, and the veth ends in it,
		// later; deleting the pair first makes the link go at once.
		if err := ipCmd("link", "del", f.veth); err != nil && linkExists(f.veth) {
			t.Errorf("tearing the network down: %v", err)
		}
		if err := deleteNamespace(f.ns); err != nil {
			t.Errorf("tearing the network down: %v", err)
		}
	})
	mustIP(t, "link", "add", f.veth, "type", "veth", "peer", "name", "eth0", "netns", f.ns)
	mustIP(t, "link", "set", f.veth, "master", n.bridge, "up")
	mustIP(t, "-n", f.ns, "link", "set", "lo", "up")
	mustIP(t, "-n", f.ns, "addr", "add", addr+"/24", "dev", "eth0")
	mustIP(t, "-n", f.ns, "link", "set", "eth0", "up")
	return f
}

// moveTo puts the host on bridge br.
func (f iface) moveTo(br string) error {
	return ipCmd("link", "set", f.veth, "master", br)
}

// readdress replaces the host's address by addr.
func (f iface) readdress(addr string) error {
	if err := ipCmd("-n", f.ns, "addr", "flush", "dev", "eth0"); err != nil {
		return err
	}
	return ipCmd("-n", f.ns, "addr", "add", addr+"/24", "dev", "eth0")
}

// nowhere is a MAC address no host has.
const nowhere = "02:00:00:00:de:ad"

// cut makes the host unable to reach addr: it sends what it means for
// addr to a MAC address no host has (a permanent neighbour entry, which
// no ARP reply overrides), and so loses it as on a broken link, with no
// error and no reply. The host's other neighbours are untouched.
func (f iface) cut(addr string) error {
	return ipCmd("-n", f.ns, "neigh", "replace", addr, "lladdr", nowhere, "dev", "eth0", "nud", "permanent")
}

// uncut undoes cut: addr is found by ARP again.
func (f iface) uncut(addr string) error {
	return ipCmd("-n", f.ns, "neigh", "del", addr, "dev", "eth0")
}

// mustIP runs `ip args...` and fails t if it fails.
func mustIP(t *testing.T, args ...string) {
	t.Helper()
	if err := ipCmd(args...); err != nil {
		t.Fatal(err)
	}
}
