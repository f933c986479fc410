package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Three hosts, each on its own address, discovery off, the first started
// alone and the others told to --join it, form one cluster: every host
// lists the three alive, names the same leader and holds the same three
// voters, and a write on one host is read on every other; no host ran
// discovery.
func TestThreeHostsJoinedFormOneCluster(t *testing.T) {
	c := NewCluster(t, 3)
	c.StartJoined(c.Hosts) // --no-discover
	var leader *Host
	took := c.WaitFor("one cluster of three voters", formWait, func() (err error) {
		leader, err = Agreement(c.Hosts, 3)
		return err
	})
	Figure(t, "3 hosts joined with --join: time to one cluster of 3 voters", took)

	writer := Others(c.Hosts, leader)[0]
	if err := writer.Put("formed/by", writer.Name); err != nil {
		t.Fatalf("a write on follower %s: %v", writer.Name, err)
	}
	took = c.WaitFor("the write read on every host", settleWait, func() error {
		return AllRead(c.Hosts, "formed/by", writer.Name)
	})
	Figure(t, "a write on a follower read on every host", took)
	if st, err := writer.Status(); err != nil || st.ClusterID == "" {
		t.Fatalf("status of %s: cluster ID %q, %v", writer.Name, st.ClusterID, fmt.Sprint(err))
	}
	for _, h := range c.Hosts {
		if strings.Contains(h.Log(), `msg="discovery`) {
			t.Errorf("%s ran discovery, started with --no-discover", h.Name)
		}
	}
}

// Issue 13 (forming, review): a joiner stopped before any cluster
// reached it keeps the raft directory its server made, with no state in
// it, and no peers file. Started again with the key and nothing to join,
// it took itself for a node with state, and bootstrapped a second
// cluster beside the one its peers formed. It is fresh: it hears their
// cluster and joins it, one cluster of three.
func TestJoinerStoppedBeforeItWasAddedJoinsTheDiscoveredCluster(t *testing.T) {
	t.Parallel() // mostly waiting out the listening windows
	c := NewCluster(t, 3)
	formed, h3 := c.Hosts[:2], c.Hosts[2]
	// h3 waits to join h1, not started yet: its server makes its raft
	// directory, and no cluster reaches it.
	h3.Args = []string{"--no-discover", "--join", formed[0].GossipAddr()}
	h3.Start()
	c.WaitFor("h3's cluster server started", formWait, func() error {
		if !strings.Contains(h3.Log(), `msg="cluster server started"`) {
			return fmt.Errorf("h3 has not logged that its cluster server started")
		}
		return nil
	})
	h3.Kill()
	c.StartDiscovered(formed)
	c.WaitFor("one cluster of h1 and h2", formWait, func() error {
		_, err := c.OneCluster(formed, -1)
		return err
	})
	c.StartDiscovered([]*Host{h3})
	took := c.WaitFor("one cluster of the three", formWait, func() error {
		_, err := c.OneCluster(c.Hosts, -1)
		return err
	})
	Figure(t, "a joiner stopped before it was added, started again with discovery: time to one cluster with the two others", took)
}

// Issue 13 (forming, review): the candidate of fresh nodes dies after
// they decided to join it, before it bootstraps. They waited for ever,
// their forming decision taken; one of them, named by the others once the
// dead one has gone quiet, starts the cluster, and the others join it.
// h2 and h3 listen first; h1, the lowest name, starts within their
// window, announces itself, and is killed at once: they settle naming it.
func TestFreshHostsWhoseCandidateDiedBeforeBootstrappingFormOneCluster(t *testing.T) {
	t.Parallel() // mostly waiting out the listening window and the dead one's expiry
	c := NewCluster(t, 3)
	h1, rest := c.Hosts[0], c.Hosts[1:]
	listening := func(hs ...*Host) func() error {
		return func() error {
			for _, h := range hs {
				if !strings.Contains(h.Log(), "listening for its peers") {
					return fmt.Errorf("%s is not listening yet", h.Name)
				}
			}
			return nil
		}
	}
	c.StartDiscovered(rest)
	c.WaitFor("h2 and h3 listening", formWait, listening(rest...))
	c.StartDiscovered([]*Host{h1})
	c.WaitFor("h1 listening", formWait, listening(h1))
	h1.Kill()
	killed := time.Now()
	c.WaitFor("h2 and h3 deciding to join h1", formWait, func() error {
		for _, h := range rest {
			log := h.Log()
			i := strings.Index(log, `msg="discovery decided"`)
			if i < 0 {
				return fmt.Errorf("%s has not decided yet", h.Name)
			}
			line, _, _ := strings.Cut(log[i:], "\n")
			if field(line, "step") != "join" || !strings.HasPrefix(strings.TrimLeft(field(line, "join"), `"`), "["+h1.GossipAddr()) {
				t.Fatalf("setup: %s did not decide to join h1 first (h1 was not heard in its window): %s", h.Name, line)
			}
		}
		return nil
	})
	c.WaitFor("one cluster of h2 and h3", formWait, func() error {
		_, err := c.OneCluster(rest, -1)
		return err
	})
	Figure(t, "fresh hosts whose candidate died before it bootstrapped: time from its death to one cluster", time.Since(killed))
	if !strings.Contains(rest[0].Log(), "it starts the cluster") {
		t.Errorf("h2, the lowest left, did not say that it starts the cluster")
	}
}
