package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// formThree starts three hosts joined with --join and waits for them to
// be one cluster of three voters.
func formThree(t *testing.T, c *Cluster) {
	t.Helper()
	c.StartJoined(c.Hosts[:3])
	took := c.WaitFor("one cluster of three voters", formWait, func() error {
		_, err := Agreement(c.Hosts[:3], 3)
		return err
	})
	Figure(t, "3 hosts joined with --join: time to one cluster of 3 voters", took)
}

// A host stopped (SIGTERM: it leaves the cluster) while the others write,
// then started again on its data dir, rejoins as a voter and reads every
// write it missed.
func TestRestartedHostRejoinsAndCatchesUp(t *testing.T) {
	c := NewCluster(t, 3)
	formThree(t, c)
	h1, h3 := c.Hosts[0], c.Hosts[2]
	if err := h3.Put("r/before", "1"); err != nil {
		t.Fatal(err)
	}
	h3.Stop()
	const missed = 20
	for i := range missed {
		if err := h1.Put(fmt.Sprintf("r/missed/%02d", i), fmt.Sprint(i)); err != nil {
			t.Fatalf("a write while h3 is stopped: %v", err)
		}
	}

	start := time.Now()
	h3.Start()
	c.WaitFor("h3 reading the last write it missed", settleWait, func() error {
		got, err := h3.Get(fmt.Sprintf("r/missed/%02d", missed-1))
		if err == nil && got != fmt.Sprint(missed-1) {
			err = fmt.Errorf("h3 reads %q", got)
		}
		return err
	})
	Figure(t, "host restarted on its data dir: time until it reads what it missed", time.Since(start))
	took := c.WaitFor("h3 a voter again", formWait, func() error {
		_, err := Agreement(c.Hosts, 3)
		return err
	})
	Figure(t, "host restarted on its data dir: time until it is a voter again", took)
	// It left, so it came back as a spare: promoted only once caught up
	// for 10 s (a leader once promoted it at once, on a clock it kept from
	// the node's first promotion).
	if took < 10*time.Second {
		t.Errorf("the restarted host, which had left, was a voter again %v after it started, within the 10 s a spare must be caught up", took)
	}
	want := map[string]string{"r/before": "1"}
	for i := range missed {
		want[fmt.Sprintf("r/missed/%02d", i)] = fmt.Sprint(i)
	}
	c.WaitFor("every key alike on every host", settleWait, func() error {
		return sameKeys(c.Hosts, "r/", want)
	})
}

// A host killed (a power loss), moved to another address (a VM moved, a
// new DHCP lease) and started again on its data dir rejoins as itself:
// the same node name, at its new gossip and cluster addresses in every
// host's view, a voter, and nothing left of its old address.
//
// It takes about a minute (see TestHostOnANewAddressKeepsItsSeat): the
// others' gossip refuses the name from the new address until the old one
// has been dead for DeadNodeReclaimTime (30 s) and the moved node's next
// push/pull (every 30 s); by then the leader has removed it from raft
// (30 s after its death), so it comes back as a spare, promoted 10 s later.
func TestHostOnANewAddressRejoinsAsItself(t *testing.T) {
	t.Parallel() // mostly waiting out graces: alongside the other long waits
	c := NewCluster(t, 3)
	formThree(t, c)
	h3 := c.Hosts[2]
	if err := h3.Put("a/before", "1"); err != nil {
		t.Fatal(err)
	}
	h3.Kill()
	old := h3.Addr
	moved := c.NewAddr(h3)
	start := time.Now()
	h3.Start()
	took := c.WaitFor("h3 at its new address, in every host's view", deadWait, func() error {
		_, err := Agreement(c.Hosts, 3)
		return err
	})
	Figure(t, fmt.Sprintf("host moved from %s to %s: time until it is a voter at its new address", old, moved), took)
	st, err := h3.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != h3.Name || st.Host != h3.Name {
		t.Errorf("the moved host is %q (raft ID %q), want %s", st.Host, st.ID, h3.Name)
	}
	if err := h3.Put("a/after", h3.Addr); err != nil {
		t.Fatalf("a write through the moved host: %v", err)
	}
	c.WaitFor("both writes read on every host", settleWait, func() error {
		return sameKeys(c.Hosts, "a/", map[string]string{"a/before": "1", "a/after": moved})
	})
	Figure(t, "host moved: time until its write after the move is read everywhere", time.Since(start))
}

// A moved host comes back within the dead-node grace and keeps its raft
// seat, readdressed, as a restarted host at the same address does: the
// ring refuses its name from the new address until the old one has been
// dead for DeadNodeReclaimTime, so the moved node tells its peers again
// every 2 s until raft has its new address. Before, it waited for its next
// push/pull (30 s) and the leader removed it from raft as gone first.
func TestHostOnANewAddressKeepsItsSeat(t *testing.T) {
	c := NewCluster(t, 3)
	formThree(t, c)
	h3 := c.Hosts[2]
	h3.Kill()
	c.NewAddr(h3)
	h3.Start()
	// Gossip declares the old address dead in 5 to 7 s, lets the name
	// come from elsewhere 10 s later; the dead-server grace is 30 s.
	took := c.WaitFor("h3 a voter at its new address", 28*time.Second, func() error {
		_, err := Agreement(c.Hosts, 3)
		return err
	})
	Figure(t, "host moved: time until it holds its seat at its new address", took)
	for _, h := range c.Hosts[:2] {
		if strings.Contains(h.Log(), "removing a server that is gone") {
			t.Errorf("%s removed the moved host from raft", h.Name)
		}
	}
}
