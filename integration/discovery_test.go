package integration

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Discovery's documented traffic (README, Clustering > Discovery): one
// packet at start, one on a change or to answer a query, never two within
// minGap, one every interval in steady state.
const (
	beaconInterval = 2 * time.Second
	beaconMinGap   = 500 * time.Millisecond
	// slowForm is a forming slow enough that the hosts' logs are shown.
	slowForm = 25 * time.Second
)

// StartDiscovered starts hosts with nothing to join: given the key, each
// finds the others by discovery (on by default then).
func (c *Cluster) StartDiscovered(hosts []*Host) {
	c.t.Helper()
	for _, h := range hosts {
		h.Args = nil
		h.Start()
	}
}

// OneCluster checks that hosts are one cluster (see Agreement; voters < 0
// takes any number of voters) and that all of them report the same
// cluster ID, which it returns. Two hosts that report two cluster IDs
// are two clusters, which discovery never merges: that fails t at once.
func (c *Cluster) OneCluster(hosts []*Host, voters int) (string, error) {
	c.t.Helper()
	ids := map[string][]string{}
	for _, h := range hosts {
		st, err := h.Status()
		if err != nil {
			return "", err
		}
		if st.ClusterID != "" {
			ids[st.ClusterID] = append(ids[st.ClusterID], h.Name)
		}
	}
	if len(ids) > 1 {
		c.t.Fatalf("the hosts formed %d clusters, never merged: %v", len(ids), ids)
	}
	if _, err := Agreement(hosts, voters); err != nil {
		return "", err
	}
	for id, named := range ids {
		if len(named) == len(hosts) {
			return id, nil
		}
	}
	return "", fmt.Errorf("not every host reports the cluster ID yet: %v", ids)
}

// Three hosts given the same key and nothing to join find each other on
// the bridge and form exactly one cluster: every host lists the three,
// names one leader, holds the three as voters and reports one cluster
// ID. Stopped, each host's beacon sent no more than the documented
// traffic: one packet per interval, plus the start, its changes and its
// answers, and never two within the minimum gap.
func TestThreeHostsDiscoverEachOtherAndFormOneCluster(t *testing.T) {
	t.Parallel() // mostly waiting out the listening window and the promotions
	c := NewCluster(t, 3)
	c.StartDiscovered(c.Hosts)
	took := c.WaitFor("one cluster of the three", formWait, func() error {
		_, err := c.OneCluster(c.Hosts, -1)
		return err
	})
	Figure(t, "3 hosts, no --join, discovery: time to one cluster (members, leader, cluster ID)", took)
	took += c.WaitFor("one cluster of three voters", formWait, func() error {
		_, err := c.OneCluster(c.Hosts, 3)
		return err
	})
	Figure(t, "3 hosts, no --join, discovery: time to one cluster of 3 voters", took)

	for _, h := range c.Hosts {
		h.Stop()
	}
	for _, h := range c.Hosts {
		st, err := beaconStats(h.Log())
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		steady := int(st.ranFor / beaconInterval)
		// The start, its state changes (it decides, it is in the cluster,
		// the cluster ID is known) and an answer to each other host's
		// query: each at most one packet more than steady state.
		allowance := 1 + 3 + (len(c.Hosts) - 1) + 2
		bound := min(steady+allowance, int(st.ranFor/beaconMinGap)+1)
		t.Logf("figure: discovery traffic of %s: sent %d packets in %.1f s (bound %d; steady state alone %d), received %d, accepted %d, ignored %s",
			h.Name, st.sent, st.ranFor.Seconds(), bound, steady, st.received, st.accepted, st.ignored)
		if st.sent > bound {
			t.Errorf("%s sent %d discovery packets in %v: more than the documented bound of %d", h.Name, st.sent, st.ranFor, bound)
		}
		if st.sent < steady/2 || st.accepted == 0 {
			t.Errorf("%s sent %d packets in %v and accepted %d: the beacon did not announce itself every %v",
				h.Name, st.sent, st.ranFor, st.accepted, beaconInterval)
		}
		if st.ignored != "map[]" {
			t.Errorf("%s ignored packets, %s, where only its own cluster's nodes send", h.Name, st.ignored)
		}
	}
}

// counts is what one beacon logged when it stopped.
type counts struct {
	sent, received, accepted int
	// ignored is the count of packets ignored by reason, as logged:
	// map[] when none was.
	ignored string
	ranFor  time.Duration
}

// beaconStats reads the last `discovery stopped` line of an agent's log.
func beaconStats(log string) (counts, error) {
	var last string
	for line := range strings.Lines(log) {
		if strings.Contains(line, `msg="discovery stopped"`) && strings.Contains(line, "sent=") {
			last = line
		}
	}
	if last == "" {
		return counts{}, fmt.Errorf("its log has no line `discovery stopped sent=...`")
	}
	var c counts
	for _, f := range []struct {
		key string
		n   *int
	}{{"sent", &c.sent}, {"received", &c.received}, {"accepted", &c.accepted}} {
		v, err := strconv.Atoi(field(last, f.key))
		if err != nil {
			return counts{}, fmt.Errorf("%s in %q: %w", f.key, last, err)
		}
		*f.n = v
	}
	d, err := time.ParseDuration(field(last, "ran_for"))
	if err != nil {
		return counts{}, fmt.Errorf("ran_for in %q: %w", last, err)
	}
	c.ranFor = d
	c.ignored = field(last, "ignored")
	if i := strings.Index(last, `ignored="`); i >= 0 {
		c.ignored, _, _ = strings.Cut(last[i+len(`ignored="`):], `"`)
	}
	return c, nil
}

// field is the value of key=value in a text log line, "" if absent.
func field(line, key string) string {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// formTries is how many times TestFiveFreshHostsStartedAtOnceFormOneCluster
// starts five hosts: GRAFT_INTEG_FORM_TRIES (the 20), else a few,
// to keep the suite's time.
func formTries(t *testing.T) int {
	t.Helper()
	const defaultTries = 5
	v := os.Getenv("GRAFT_INTEG_FORM_TRIES")
	if v == "" {
		return defaultTries
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("GRAFT_INTEG_FORM_TRIES=%q: want a number of tries, 1 or more", v)
	}
	return n
}

// Five fresh hosts given the same key, nothing to join, started within a
// few seconds, form exactly one cluster of five, every time: each try starts
// them on fresh data dirs and a network of their own and waits until
// every host lists the five, names one leader and reports one cluster ID.
func TestFiveFreshHostsStartedAtOnceFormOneCluster(t *testing.T) {
	t.Parallel() // mostly waiting out the listening window
	tries := formTries(t)
	var took []time.Duration
	for i := 1; i <= tries; i++ {
		ok := t.Run(fmt.Sprintf("try%d", i), func(t *testing.T) {
			c := NewCluster(t, 5)
			start := time.Now()
			c.StartDiscovered(c.Hosts)
			// The "within a few seconds"; starting five agents
			// on a loaded machine took 1.2 s once.
			if spread := time.Since(start); spread > 3*time.Second {
				t.Fatalf("starting the five took %v: not within a few seconds", spread)
			}
			var id string
			d := c.WaitFor("one cluster of five", formWait, func() (err error) {
				id, err = c.OneCluster(c.Hosts, -1)
				return err
			})
			Figure(t, "5 fresh hosts started at once: time to one cluster of 5 (cluster "+id+")", d)
			if d > slowForm {
				t.Logf("the five took over %v: their logs say why", slowForm)
				c.PrintLogs()
			}
			took = append(took, d)
		})
		if !ok {
			break
		}
	}
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	t.Logf("figure: 5 fresh hosts started at once: one cluster in %d of %d tries, in %.1f to %.1f s (median %.1f s)",
		len(took), tries, took[0].Seconds(), took[len(took)-1].Seconds(), took[len(took)/2].Seconds())
}

// A host with no key, fresh, started beside a cluster its peers formed by
// discovery, says which cluster it saw and the command to join it, and
// only then starts a cluster of its own, with a key of its own.
func TestKeylessHostNamesTheClusterItSawThenStartsItsOwn(t *testing.T) {
	t.Parallel() // mostly waiting out the listening windows
	c := NewCluster(t, 4)
	formed, h4 := c.Hosts[:3], c.Hosts[3]
	c.StartDiscovered(formed)
	var id string
	c.WaitFor("one cluster of three", formWait, func() (err error) {
		id, err = c.OneCluster(formed, -1)
		return err
	})
	h4.Token = ""
	h4.Start()
	var own string
	took := c.WaitFor("the keyless host running a cluster of its own", formWait, func() error {
		st, err := h4.Status()
		if err != nil {
			return err
		}
		if st.ClusterID == "" || st.Leader != h4.Name {
			return fmt.Errorf("h4: cluster %q, leader %q", st.ClusterID, st.Leader)
		}
		own = st.ClusterID
		return nil
	})
	Figure(t, "a keyless host beside a discovered cluster: time to a cluster of its own", took)
	if own == id {
		t.Fatalf("h4, with no key, reports the discovered cluster's ID %s", id)
	}

	log := h4.Log()
	saw := strings.Index(log, "discovery: saw a cluster on this network")
	started := strings.Index(log, "this node started a new cluster")
	if saw < 0 || started < 0 || saw > started {
		t.Fatalf("h4 did not say which cluster it saw before starting its own (at %d, started at %d)", saw, started)
	}
	line, _, _ := strings.Cut(log[saw:], "\n")
	addrs := make([]string, 0, len(formed))
	for _, h := range formed {
		addrs = append(addrs, h.GossipAddr())
	}
	member := field(line, "member_gossip_addr")
	if !slices.Contains(addrs, member) || field(line, "cluster_name") != "graft" {
		t.Errorf("h4's line names member %q of cluster %q; want one of %v of cluster graft: %s",
			member, field(line, "cluster_name"), addrs, line)
	}
	if want := `join_command="GRAFT_TOKEN=<its key> graft run --join ` + member + `"`; !strings.Contains(line, want) {
		t.Errorf("h4's line does not give the command to join, %s: %s", want, line)
	}
	ms, err := formed[0].Members()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := ms[h4.Name]; ok {
		t.Errorf("h1 lists the keyless h4 as a member: %+v", m)
	}
}
