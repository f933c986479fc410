package raftnode

import (
	"github.com/hashicorp/raft"
)

// A follower of hashicorp/raft starts an election only when its heartbeat
// timer fires, a random time between one and two heartbeat timeouts after
// it started (1 to 2 s in production). A node that is the only voter of
// its configuration, just bootstrapped alone or restarting alone on its
// data dir, has nobody to hear from and needs nobody's vote, so that wait
// was the whole of its start to first write: it makes raft check its
// heartbeat at once instead (see checkHeartbeatNow), and having heard
// from no leader, raft stands, and wins with its own vote.

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
	if n.checkHeartbeatNow() {
		n.log.Debug("the only voter of its configuration: standing for election at once")
	}
}

// checkHeartbeatNow makes raft, if it follows, check now rather than when
// its heartbeat timer fires whether it has heard from a leader within a
// heartbeat timeout, and stand for election if not (as a voter of its
// configuration). raft's ReloadConfig, given a heartbeat timeout shorter
// than the one in force, does that check: the timeouts are raised for an
// instant and put back, so raft runs with the configured ones throughout.
// It reports whether raft took the check.
func (n *Node) checkHeartbeatNow() bool {
	n.checkMu.Lock()
	defer n.checkMu.Unlock()
	configured := n.raft.ReloadableConfig()
	configured.HeartbeatTimeout, configured.ElectionTimeout = n.cfg.HeartbeatTimeout, n.cfg.ElectionTimeout
	longer := configured
	longer.HeartbeatTimeout *= 2
	longer.ElectionTimeout = max(longer.ElectionTimeout, longer.HeartbeatTimeout)
	if err := n.raft.ReloadConfig(longer); err != nil {
		n.log.Warn("raft refused its timeouts raised for an instant", "error", err)
		return false
	}
	if err := n.raft.ReloadConfig(configured); err != nil {
		// Validated when raft started with them: it cannot refuse them now.
		n.log.Error("restoring raft's configured timeouts", "error", err)
		return false
	}
	return true
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
