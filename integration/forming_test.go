package integration

import (
	"fmt"
	"strings"
	"testing"
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
