package integration

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Five voters; the leader and one follower are cut off from the three
// others (they reach each other, nobody else). The three keep a leader
// and keep writing; the two refuse writes with an error that says there
// is no leader; once the network heals, all five agree on every key.
func TestPartitionedMinorityRefusesWritesAndHealsToAgreement(t *testing.T) {
	c := NewCluster(t, 5)
	c.StartJoined(c.Hosts)
	var leader *Host
	c.WaitFor("one cluster of five voters", formWait, func() (err error) {
		leader, err = Agreement(c.Hosts, 5)
		return err
	})
	for i, h := range c.Hosts {
		if err := h.Put(fmt.Sprintf("p/before/%d", i), h.Name); err != nil {
			t.Fatal(err)
		}
	}

	minority := []*Host{leader, Others(c.Hosts, leader)[0]}
	majority := Others(c.Hosts, minority...)
	start := time.Now()
	c.Partition(minority...)
	// The first write waits for the majority's election (a write waits
	// up to 10 s for a leader; on a loaded machine, ask again).
	want := map[string]string{"p/during/0": majority[0].Name}
	c.WaitFor("the majority taking a write", electWait, func() error {
		return majority[0].Put("p/during/0", majority[0].Name)
	})
	Figure(t, "partition cut the leader off: time until the majority's first write returned", time.Since(start))
	for i := 1; i < 5; i++ {
		h := majority[i%len(majority)]
		key := fmt.Sprintf("p/during/%d", i)
		if err := h.Put(key, h.Name); err != nil {
			t.Fatalf("write %d through %s, of the majority, during the partition: %v", i, h.Name, err)
		}
		want[key] = h.Name
	}
	if _, err := commonLeader(majority); err != nil {
		t.Fatalf("the majority, during the partition: %v", err)
	}

	// Each refusal takes the 10 s a write waits for a leader: both at once.
	refusals := make(chan error, len(minority))
	for _, h := range minority {
		go func() { refusals <- h.Put("p/minority", h.Name) }()
	}
	for range minority {
		err := <-refusals
		var ce *cliError
		if !errors.As(err, &ce) {
			t.Fatalf("a write through the minority, cut off: %v, want it refused", err)
		}
		t.Logf("a write through the minority is refused: %v", err)
		// Which of the two a cut-off node says depends on whether it has
		// noticed yet that its leader stepped down: both say why.
		if !strings.Contains(ce.stderr, "no leader") && !strings.Contains(ce.stderr, "the leader cannot be reached") {
			t.Errorf("the refusal does not say why (no leader, or the leader cannot be reached): %q", ce.stderr)
		}
		// Either says the quorum: the pair reaches 2 of the 5 voters.
		if !strings.Contains(ce.stderr, "reaches 2 of the 5 voters") || !strings.Contains(ce.stderr, "a leader needs a majority, 3") {
			t.Errorf("the refusal does not say how many voters the node reaches and that a majority, 3, is needed: %q", ce.stderr)
		}
	}

	healed := time.Now()
	c.Heal()
	took := c.WaitFor("all five agreeing after the heal", formWait, func() error {
		_, err := Agreement(c.Hosts, 5)
		return err
	})
	Figure(t, "partition healed: time until all five agree on members and leader", took)
	c.WaitFor("every key alike on every host", settleWait, func() error {
		return sameKeys(c.Hosts, "p/", want)
	})
	Figure(t, "partition healed: time until every host reads every key", time.Since(healed))
}

// sameKeys checks that every host lists the same keys under prefix, and
// among them those in want, with their values, and no key ending in
// "minority".
func sameKeys(hosts []*Host, prefix string, want map[string]string) error {
	var first string
	for i, h := range hosts {
		out, err := h.Graft("kv", "list", prefix)
		if err != nil {
			return err
		}
		if i == 0 {
			first = out
		} else if out != first {
			return fmt.Errorf("%s lists %q, %s %q", h.Name, out, hosts[0].Name, first)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for k, v := range want {
			if !slices.Contains(lines, k+"="+v) {
				return fmt.Errorf("%s lists %q, without %s=%s", h.Name, out, k, v)
			}
		}
		if strings.Contains(out, "minority") {
			return fmt.Errorf("%s lists a write the minority refused: %q", h.Name, out)
		}
	}
	return nil
}
