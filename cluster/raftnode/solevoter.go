package raftnode

import (
	"github.com/hashicorp/raft"
)

// A follower of hashicorp/raft starts an election only when its heartbeat
// timer fires, a random time between one and two heartbeat timeouts after
// it started (1 to 2 s in production). A node that is the only voter of
// its configuration, just bootstrapped alone or restarting alone on its
// data dir, has nobody to hear from and needs nobody's vote, so that wait
// was the whole of its start to first write.
//
// raft's ReloadConfig, given a heartbeat timeout shorter than the one in
// force, makes a follower check its heartbeat at once rather than when its
// timer fires, and a follower that never heard from a leader then stands
// for election: alone, it wins with its own vote. electIfSoleVoter raises
// the timeouts for an instant and puts them back, so that the check comes
// now while the timings raft runs with stay the configured ones, for this
// node and for any cluster it grows into.

// electIfSoleVoter makes raft stand for election now if this node is the
// only voter of its latest configuration; otherwise it does nothing.
func (n *Node) electIfSoleVoter() {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.log.Warn("reading the raft configuration to elect a sole voter at once", "error", err)
		return
	}
	if !soleVoter(f.Configuration().Servers, n.cfg.NodeID) {
		return
	}
	configured := n.raft.ReloadableConfig()
	longer := configured
	longer.HeartbeatTimeout *= 2
	longer.ElectionTimeout = max(longer.ElectionTimeout, longer.HeartbeatTimeout)
	if err := n.raft.ReloadConfig(longer); err != nil {
		n.log.Warn("a sole voter waits a heartbeat timeout to elect itself", "error", err)
		return
	}
	if err := n.raft.ReloadConfig(configured); err != nil {
		// Validated when raft started with them: it cannot refuse them now.
		n.log.Error("restoring raft's configured timeouts", "error", err)
		return
	}
	n.log.Debug("the only voter of its configuration: standing for election at once")
}

// soleVoter reports whether id is the only voter among servers.
func soleVoter(servers []raft.Server, id string) bool {
	voters := 0
	self := false
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || string(s.ID) == id
		}
	}
	return voters == 1 && self
}
