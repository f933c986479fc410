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

// The timer relations a semaphore holder's safety rests on are checked:
// a config breaking one is refused, naming the fields; the presets keep
// them.
func TestServerConfigRefusesTimingsThatBreakSemaphoreSafety(t *testing.T) {
	for _, preset := range []cluster.ServerConfig{cluster.DefaultServerConfig(), cluster.TestServerConfig()} {
		preset.Raft.NodeID = "a"
		if err := preset.Validate(); err != nil {
			t.Fatalf("a preset is refused: %v", err)
		}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*cluster.ServerConfig)
		names []string
	}{
		{"no release grace", func(c *cluster.ServerConfig) { c.ReleaseGrace = 0 }, []string{"ReleaseGrace"}},
		{"a release grace shorter than twice the leader lease",
			func(c *cluster.ServerConfig) { c.ReleaseGrace = 2*c.Raft.LeaderLeaseTimeout - 1 },
			[]string{"ReleaseGrace", "Raft.LeaderLeaseTimeout"}},
		{"a dead-server grace shorter than twice the release grace",
			func(c *cluster.ServerConfig) { c.DeadServerGrace = 2*c.ReleaseGrace - 1 },
			[]string{"DeadServerGrace", "ReleaseGrace"}},
	} {
		cfg := cluster.DefaultServerConfig()
		cfg.Raft.NodeID = "a"
		tc.mod(&cfg)
		err := cfg.Validate()
		for _, name := range tc.names {
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: Validate: %v, want an error naming %s", tc.name, err, name)
			}
		}
	}
}
