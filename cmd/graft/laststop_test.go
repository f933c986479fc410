package main

import (
	"strings"
	"testing"
	"time"
)

// Issue 9: stopping the last node of a cluster took about 10 s: its leave
// waited for a leader to take it out of raft ("leaving the cluster took
// too long"), and nobody was up to do it. It stops at once.
func TestStoppingTheLastNodeDoesNotWaitForALeave(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	b := startNode(t, "b", "--join", gossip, "--token", key)
	waitUntil(t, "b as a non-voter", func() (bool, error) {
		ms, err := a.tryMembers(t)
		return ms["b"].Role == "nonvoter", err
	})
	a.stop()
	waitUntil(t, "a shown as left on b", func() (bool, error) {
		ms, err := b.tryMembers(t)
		return ms["a"].Gossip == "left", err
	})
	start := time.Now()
	b.stop()
	took := time.Since(start)
	t.Logf("the last node stopped in %v", took)
	if took >= leaveTimeout*3/4 {
		t.Errorf("the last node took %v to stop, want far less than the leave timeout (%v)", took, leaveTimeout)
	}
	if out := b.output(); strings.Contains(out, "took too long") || !strings.Contains(out, "no other voter is up") {
		t.Errorf("the last node's log does not say it had nobody to leave through:\n%s", out)
	}
}
