package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/discovery"
)

func TestDiscoverFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--discover", "--no-discover"}, "--discover and --no-discover: give one"},
		{[]string{"--discover"}, "--discover: the gossip port is chosen when bound"},
		{[]string{"--discover", "--gossip-addr", "127.0.0.1:7946"}, "--discover: the gossip address 127.0.0.1 is loopback"},
		{[]string{"--discover", "--gossip-addr", "10.0.0.1:7946", "--bootstrap-expect", "3"}, "--discover with --bootstrap-expect"},
	} {
		code, _, stderr := graft(t, append([]string{"run", "--tmp-prefix"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}

func TestDiscoveryIsOnByDefaultOnlyWithNothingToJoinOnAReachableAddress(t *testing.T) {
	lan := clusterOptions{gossipAddr: "10.0.0.1:7946"}
	for _, tc := range []struct {
		name           string
		o              clusterOptions
		explicit, on   bool
		off            bool
		wantDiscovered bool
	}{
		{name: "nothing to join, a LAN address", o: lan, wantDiscovered: true},
		{name: "advertised on the LAN, bound to every address", o: clusterOptions{gossipAddr: "0.0.0.0:7946", advertiseAddr: "10.0.0.2"}, wantDiscovered: true},
		{name: "--join", o: clusterOptions{gossipAddr: "10.0.0.1:7946", join: []string{"10.0.0.2:7946"}}},
		{name: "--bootstrap-expect", o: clusterOptions{gossipAddr: "10.0.0.1:7946", bootstrapExpect: 3}},
		{name: "a loopback address", o: clusterOptions{gossipAddr: "127.0.0.1:7946"}},
		{name: "a port chosen when bound", o: clusterOptions{gossipAddr: "10.0.0.1:0"}},
		{name: "--no-discover", o: lan, off: true},
		{name: "--discover=false", o: lan, explicit: true},
		{name: "--discover with --join", o: clusterOptions{gossipAddr: "10.0.0.1:7946", join: []string{"10.0.0.2:7946"}},
			explicit: true, on: true, wantDiscovered: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if err := o.discoverySetting(tc.explicit, tc.on, tc.off); err != nil {
				t.Fatal(err)
			}
			if o.discover != tc.wantDiscovered {
				t.Errorf("discover = %v, want %v", o.discover, tc.wantDiscovered)
			}
			if asked := tc.explicit && tc.on; o.discoverAsked != asked {
				t.Errorf("discoverAsked = %v, want %v: only --discover makes a beacon that cannot start an error", o.discoverAsked, asked)
			}
		})
	}
}

// Another cluster of this key on the LAN is never merged: it is named
// loudly, once per cluster every conflictLogEvery.
func TestAnotherClusterOfTheKeyIsNamedOncePerPeriod(t *testing.T) {
	var buf strings.Builder
	d := &agentDiscovery{log: slog.New(slog.NewTextHandler(&buf, nil))}
	named := map[string]time.Time{}
	other := []discovery.Peer{{Name: "x", Addr: "10.0.0.9:7946", Bootstrapped: true, ClusterID: "c2"},
		{Name: "y", Addr: "10.0.0.8:7946", Bootstrapped: true, ClusterID: "c2"}}
	for range 3 {
		d.nameConflicts("c1", other, named)
	}
	out := buf.String()
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Fatalf("%d error lines for one other cluster heard three times, want 1:\n%s", n, out)
	}
	for _, want := range []string{"never merged", "cluster_id=c2", "own_cluster_id=c1", "x@10.0.0.9:7946, y@10.0.0.8:7946", "graft leave"} {
		if !strings.Contains(out, want) {
			t.Errorf("the line does not say %q:\n%s", want, out)
		}
	}
	d.nameConflicts("c1", []discovery.Peer{{Name: "z", Addr: "10.0.0.7:7946", Bootstrapped: true, ClusterID: "c3"}}, named)
	if n := strings.Count(buf.String(), "level=ERROR"); n != 2 {
		t.Errorf("a third cluster heard is not named at once: %d lines", n)
	}
}

// A fresh node waiting to be added that hears a bootstrapped cluster joins
// it through the address heard, and is added; an address that does not
// answer is not tried again before its backoff.
func TestDiscoveryJoinsTheClusterHeard(t *testing.T) {
	f := clustertest.NewFleet(t, 2, nil)
	boot := f.Start(f.Slots[0], nil) // alone: bootstraps
	waiting := f.Start(f.Slots[1], func(c *cluster.ServerConfig) { c.Join = []string{"s9-nowhere:1"} })
	d := &agentDiscovery{log: slog.New(slog.DiscardHandler)}
	tried := map[string]*backoff{}
	d.joinMissing(waiting, discovery.Decision{Step: discovery.Join, Join: []string{"s8-nowhere:1"}}, tried)
	first := tried["s8-nowhere:1"]
	if first == nil || first.wait != rejoinFirst {
		t.Fatalf("an address that did not answer: backoff %+v, want one of %v", first, rejoinFirst)
	}
	next := first.next
	d.joinMissing(waiting, discovery.Decision{Step: discovery.Join, Join: []string{"s8-nowhere:1"}}, tried)
	if tried["s8-nowhere:1"].next != next {
		t.Errorf("an address that did not answer was tried again before its backoff")
	}
	heard := f.Slots[0].GossipAddr()
	d.joinMissing(waiting, discovery.Decision{Step: discovery.Join, Join: []string{heard}}, tried)
	// The waiting node learns the cluster's ID once it is added.
	waitUntil(t, "the waiting node added to the cluster heard at "+heard, func() (bool, error) {
		id := waiting.ClusterID()
		return id != "" && id == boot.ClusterID(), nil
	})
	d.joinMissing(waiting, discovery.Decision{Step: discovery.Member, Join: []string{heard}}, tried)
	if _, ok := tried[heard]; ok {
		t.Errorf("a member alive in the ring is still on the list of addresses to retry")
	}
}
