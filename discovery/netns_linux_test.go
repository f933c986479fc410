package discovery

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsPrefix names this package's test namespaces, with the test
// process's PID, so leftovers of a crashed run can be told from a run
// under way.
const netnsPrefix = "gdisc-"

// ip runs ip(8) with args.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// removeStaleNetns removes the namespaces of earlier runs of this test
// whose process is gone.
func removeStaleNetns(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err == nil && syscall.Kill(pid, 0) == nil {
			continue // a run under way
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// lan makes a bridge in a namespace of its own and n host namespaces
// wired to it, host i at 10.231.0.i/24, and removes them all when the
// test ends, whatever happens. It returns the hosts' namespace names.
func lan(t *testing.T, n int) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates network namespaces to send real multicast (loopback has none)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (iproute2) to create network namespaces")
	}
	removeStaleNetns(t)
	base := fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid())
	sw := base + "sw"
	var made []string
	t.Cleanup(func() {
		for _, ns := range made {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("removing namespace %s: %v: %s", ns, err, out)
			}
		}
	})
	ip(t, "netns", "add", sw)
	made = append(made, sw)
	ip(t, "-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	ip(t, "-n", sw, "link", "set", "br0", "up")
	var hosts []string
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("%sh%d", base, i)
		ip(t, "netns", "add", h)
		made = append(made, h)
		port := fmt.Sprintf("p%d", i)
		ip(t, "-n", h, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", sw)
		ip(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		ip(t, "-n", h, "addr", "add", fmt.Sprintf("10.231.0.%d/24", i), "dev", "eth0")
		ip(t, "-n", h, "link", "set", "eth0", "up")
		ip(t, "-n", h, "link", "set", "lo", "up")
		hosts = append(hosts, h)
	}
	return hosts
}

// inNetns runs fn on a thread moved into the named namespace: sockets fn
// opens belong to it for good.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestThreeHostsFormOneClusterOverRealMulticast runs three beacons in
// three network namespaces on one bridge, on the production multicast
// conn: they hear each other and exactly one bootstraps.
func TestThreeHostsFormOneClusterOverRealMulticast(t *testing.T) {
	hosts := lan(t, 3)
	cfgs := make([]Config, len(hosts))
	for i, h := range hosts {
		local := netip.MustParseAddr(fmt.Sprintf("10.231.0.%d", i+1))
		var conn Conn
		var err error
		inNetns(t, h, func() { conn, err = ListenMulticast(DefaultGroupAddr(), local) })
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i] = Config{ClusterName: "graft", NodeName: fmt.Sprintf("host%d", 3-i), Addr: local.String() + ":7946",
			Key: testKey(t, "k1"), Fresh: true, Conn: conn, Interval: 100 * time.Millisecond, PeerTTL: 5 * time.Second}
	}
	runs := formWith(t, cfgs, []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond}, 7)
	checkOneCluster(t, runs, 7)
	for _, r := range runs {
		if ps := r.b.Peers(); len(ps) != 2 {
			t.Errorf("%s hears %d peers over multicast, want 2: %+v", r.name, len(ps), ps)
		}
		if st := r.b.Stats(); len(st.Ignored) != 0 {
			t.Errorf("%s ignored packets: %+v", r.name, st)
		}
	}
}
