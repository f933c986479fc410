package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A host given another key than the cluster's, told to --join it, is
// refused: it never appears among the cluster's members or servers, it
// sees no member but itself and no leader, and after its wait alone it
// logs an error naming its key's fingerprint.
func TestHostWithAWrongKeyIsRefused(t *testing.T) {
	t.Parallel() // mostly waiting out graces: alongside the other long waits
	c := NewCluster(t, 4)
	formThree(t, c)
	h4 := c.Hosts[3]
	h4.Token = c.keygen()
	h4.Args = []string{"--join", c.Hosts[0].GossipAddr()}
	h4.Start()
	var fp string
	took := c.WaitFor("h4 saying it is not in the cluster", settleWait, func() error {
		st, err := h4.Status()
		if err != nil {
			return err
		}
		fp = st.KeyFingerprint
		if !strings.Contains(h4.Log(), "not in the cluster yet") {
			return fmt.Errorf("h4 has not said it is not in the cluster (its key %s)", fp)
		}
		return nil
	})
	Figure(t, "host with a wrong key: time until it logs that it is not in the cluster", took)
	if !strings.Contains(h4.Log(), "fingerprint="+fp) {
		t.Errorf("h4's error does not name its key's fingerprint %s", fp)
	}
	c.WaitFor("h1 logging that it cannot decrypt what h4 sends", settleWait, func() error {
		for line := range strings.Lines(c.Hosts[0].Log()) {
			if strings.Contains(strings.ToLower(line), "decrypt") && strings.Contains(line, h4.Addr) {
				return nil
			}
		}
		return fmt.Errorf("h1 logged no line about decrypting what %s sends", h4.Addr)
	})
	cst, err := c.Hosts[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if cst.KeyFingerprint == fp {
		t.Fatalf("the two keys have one fingerprint, %s", fp)
	}

	if _, err := Agreement(c.Hosts[:3], 3); err != nil {
		t.Errorf("the cluster, after h4 tried to join: %v", err)
	}
	for _, h := range c.Hosts[:3] {
		if ms, err := h.Members(); err != nil || len(ms) != 3 {
			t.Errorf("%s's members after h4 tried to join: %v, %v; want h1 to h3 only", h.Name, ms, err)
		}
	}
	ms, err := h4.Members()
	if err != nil {
		t.Fatal(err)
	}
	if _, in := ms["h1"]; in || len(ms) != 1 {
		t.Errorf("h4, with the wrong key, sees members %v", ms)
	}
	st, err := h4.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != "" || st.ClusterID == cst.ClusterID {
		t.Errorf("h4, with the wrong key, knows leader %q, cluster %q", st.Leader, st.ClusterID)
	}
	if err := h4.Put("wrong/key", "1"); err == nil {
		t.Error("a write through h4, with the wrong key, succeeded")
	}
	if got, err := c.Hosts[0].Get("wrong/key"); err == nil {
		t.Errorf("the cluster holds wrong/key=%q", got)
	}
}
