package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// Issue 9, item 7 (second review): a node on raft state that does not
// name its cluster, told to --join, was told after 5 s that its key was
// not its cluster's: it had not tried, waiting for its cluster's ID. It
// is told why it waits instead.
func TestANodeWaitingForItsClusterIDIsNotToldItsKeyIsWrong(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	data := filepath.Join(t.TempDir(), "b")
	// Raft state of a cluster of two voters, b and a server that is never
	// up, whose first leader never wrote an ID.
	cfg := raftnode.TestConfig()
	cfg.NodeID, cfg.DataDir, cfg.BindAddr, cfg.Bootstrap = "b", data, "127.0.0.1:0", false
	node, err := raftnode.Open(cfg, fsm.New(fsm.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Bootstrap([]raftnode.RaftServer{{ID: "b", Address: node.Addr()}, {ID: "x", Address: "127.0.0.1:9"}}); err != nil {
		t.Fatal(err)
	}
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	b := startTestAgent(t, data, "b", "--join", gossip, "--token", key)
	b.waitLog(clusterWait, "joining no other node until this node knows its cluster's ID")
	if strings.Contains(b.output(), "key is not theirs") {
		t.Errorf("the node is told its key is wrong:\n%s", b.output())
	}
	if a.members(t)["b"].Gossip == "alive" {
		t.Error("the node with state of another cluster is in a's ring")
	}
}
