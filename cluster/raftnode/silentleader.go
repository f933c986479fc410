package raftnode

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/raft"
)

// When a leader dies, a follower of hashicorp/raft notices only when its
// heartbeat timer fires: every one to two heartbeat timeouts, at random,
// it checks whether it has heard from the leader within one, and stands
// for election if not. The first follower to stand asks the others for a
// pre-vote, which a follower refuses as long as it still has a leader:
// until its own timer fires. So a leader's death cost a heartbeat timeout
// and, on top, the wait for the slower follower's timer (about 0.4 to 1
// timeout on three nodes; 1.8 s at 1 s timeouts from a kill to the first
// write).
//
// watchLeaderSilence has raft make that same check (checkHeartbeatNow)
// as soon as the follower has not heard from its leader for a heartbeat
// timeout, plus a random pause of up to a tenth of one: every follower
// stands at about the same time, the leader's silence plus a heartbeat
// timeout, and the first standing followers, which have dropped the
// leader, grant the others their pre-votes and votes. The random pause
// keeps two followers from standing in the same instant and splitting
// the vote (both would wait out an election timeout then).
//
// Safety does not move: raft decides, by its own rule, with its own
// timeout, whether the leader is gone; only the moment it looks changes,
// and raft's random timer could have fired at that moment too. Raft's
// elections are safe whatever their timing, and the cluster's semaphore
// leases hold for an election at any speed (see the README). A leader
// that is alive keeps every follower's contact fresh, and nothing
// changes then; a follower that has truly not heard from it for a
// heartbeat timeout would stand at its next timer anyway.
//
// Three nodes on loopback (BenchmarkLeaderKillToFirstWrite, medians of
// alternating rounds): leader stop to first write 1.9 s -> 1.2 s at 1 s
// timeouts, 1.0 s -> 0.6 s at 500 ms.

// watchLeaderSilence makes raft check its heartbeat once this node, a
// follower, has not heard from its leader for a heartbeat timeout (and a
// random pause of up to a tenth of one), until ctx ends.
func (n *Node) watchLeaderSilence(ctx context.Context) {
	hb := n.cfg.HeartbeatTimeout
	t := time.NewTimer(hb)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		silent := time.Since(n.raft.LastContact())
		if silent < hb {
			// Look again when the last contact is a timeout old.
			t.Reset(hb - silent + rand.N(hb/10+1))
			continue
		}
		if leader, _ := n.Leader(); leader != "" && leader != n.cfg.NodeID && n.raft.State() == raft.Follower {
			n.checkHeartbeatNow()
		}
		// A follower that stood, a leader or a node with no leader: look
		// again in a timeout.
		t.Reset(hb)
	}
}
