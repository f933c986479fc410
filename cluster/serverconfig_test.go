package cluster_test

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/cluster"
)

// A server decides itself when its node bootstraps: a config that asks
// the raft node to bootstrap is refused, naming the field, where it was
// once silently ignored. The presets leave it unset.
func TestServerConfigRefusesRaftBootstrap(t *testing.T) {
	cfg := cluster.TestServerConfig()
	cfg.Raft.NodeID = "a"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the test preset is refused: %v", err)
	}
	if cluster.DefaultServerConfig().Raft.Bootstrap {
		t.Error("the production preset asks the raft node to bootstrap")
	}
	cfg.Raft.Bootstrap = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Raft.Bootstrap") {
		t.Errorf("Validate with Raft.Bootstrap: %v, want an error naming it", err)
	}
}
