package raftnode_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// heartbeatNeverInTest is a heartbeat timeout no test waits out: a node
// that leads well before it did not wait for its heartbeat timer.
const heartbeatNeverInTest = time.Hour

// openLongHeartbeat opens a node on dir whose raft waits an hour without a
// leader before it stands for election.
func openLongHeartbeat(t *testing.T, id, dir string, bootstrap bool) *raftnode.Node {
	t.Helper()
	cfg := raftnode.TestConfig()
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = id, dir, bootstrap
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = heartbeatNeverInTest, heartbeatNeverInTest
	n, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// configuredTimings checks that raft runs with the node's configured
// heartbeat and election timeouts.
func configuredTimings(t *testing.T, n *raftnode.Node) {
	t.Helper()
	rc := raftnode.RaftOf(n).ReloadableConfig()
	if rc.HeartbeatTimeout != heartbeatNeverInTest || rc.ElectionTimeout != heartbeatNeverInTest {
		t.Errorf("raft runs with heartbeat timeout %v and election timeout %v, want the configured %v for both",
			rc.HeartbeatTimeout, rc.ElectionTimeout, heartbeatNeverInTest)
	}
}

// A node that bootstraps a cluster of its own, or restarts alone on the
// data dir of one, is the only voter of its configuration: it elects
// itself at once instead of after a heartbeat timeout (1 to 2 s in
// production, all of a lone node's start to first write), and raft keeps
// the configured timings for the cluster it may grow into.
func TestSoleVoterLeadsWithoutWaitingItsHeartbeatTimeout(t *testing.T) {
	dir := t.TempDir()
	n := openLongHeartbeat(t, "solo", dir, true)
	waitFor(t, "the bootstrapped sole voter to lead", n.IsLeader)
	configuredTimings(t, n)
	writeKeys(t, n, "k", 3, 10)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = openLongHeartbeat(t, "solo", dir, false)
	if !n.StartedOnLog() {
		t.Fatal("the restarted node found no log")
	}
	waitFor(t, "the sole voter restarted on its data dir to lead", n.IsLeader)
	configuredTimings(t, n)
	writeKeys(t, n, "k", 3, 10)
}

// The same holds for a node the membership server bootstraps alone with
// Bootstrap (a fresh node with nobody to join).
func TestNodeBootstrappedAloneLeadsWithoutWaitingItsHeartbeatTimeout(t *testing.T) {
	n := openLongHeartbeat(t, "solo", t.TempDir(), false)
	if err := n.Bootstrap([]raftnode.RaftServer{{ID: "solo", Address: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node bootstrapped alone to lead", n.IsLeader)
	configuredTimings(t, n)
}

// A node bootstrapped with another voter needs that voter's vote: it
// waits for its heartbeat timeout as raft does, and stands for no early
// election (which would only raise the term its peer must follow).
func TestNodeBootstrappedWithAnotherVoterDoesNotStandAtOnce(t *testing.T) {
	n := openLongHeartbeat(t, "a", t.TempDir(), false)
	err := n.Bootstrap([]raftnode.RaftServer{{ID: "a", Address: n.Addr()}, {ID: "b", Address: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	// An early election would make raft a candidate in a new term within
	// milliseconds; give it ample time to, then check that it did not.
	bootstrapped := n.Term()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if term, state := n.Term(), raftnode.RaftOf(n).State(); term != bootstrapped || state != raft.Follower {
			t.Fatalf("a node of two voters is %v in term %d without waiting its heartbeat timeout", state, term)
		}
		<-time.After(10 * time.Millisecond)
	}
	configuredTimings(t, n)
}
