package raftnode_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
)

// A leader cut off from the other voters says so in its leader contact at
// once: it is the last time a quorum answered it, not "now" until raft
// makes it step down, nor the moment it stepped down; once healed, it is
// the new leader's contact again.
func TestCutOffLeaderContactIsItsLastQuorumContact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		l := leader(t, c)
		n := l.Node()
		time.Sleep(time.Second) // on the bubble's clock: a steady leader
		hb := raftnode.TestConfig().HeartbeatTimeout
		if ago := time.Since(n.LeaderContact()); !n.IsLeader() || ago > hb/2 {
			t.Fatalf("a leader in touch with its followers (leading: %v) says its contact was %v ago", n.IsLeader(), ago)
		}
		c.Partition(l)
		cut := time.Now()
		var led, after int // samples while it still led, and once it stepped down
		for deadline := cut.Add(10 * time.Second); after < 60; {
			if time.Now().After(deadline) {
				t.Fatalf("%s still leads 10 s after it was cut off", l.ID)
			}
			time.Sleep(5 * time.Millisecond)
			leading, contact := n.IsLeader(), n.LeaderContact()
			if contact.After(cut) {
				t.Fatalf("%v after it was cut off, %s (leading: %v) says it heard from a quorum %v after the cut",
					time.Since(cut), l.ID, leading, contact.Sub(cut))
			}
			if leading {
				led++
			} else {
				after++
			}
		}
		if led == 0 {
			t.Fatal("no sample while the cut-off node still led")
		}
		t.Logf("%s led for %d samples after the cut, its contact then %v before the cut", l.ID, led,
			cut.Sub(n.LeaderContact()))
		if _, err := c.Leader(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.Heal()
		healed := time.Now()
		for n.LeaderContact().Before(healed) {
			if time.Since(healed) > 10*time.Second {
				t.Fatalf("10 s after the heal, %s's leader contact is %v before it", l.ID, healed.Sub(n.LeaderContact()))
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
