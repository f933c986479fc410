package raftnode_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
)

// After the leader dies, each follower has raft check its heartbeat as
// soon as it has not heard from the leader for a heartbeat timeout (plus
// a random pause of up to a tenth of one), instead of at its own random
// timer (up to two timeouts later): a new leader is elected within a
// heartbeat timeout and a tenth of the kill, in one election. Fake time
// (synctest) makes the bound exact; raft's timers are random, so the
// election runs twenty times on three and five nodes, and followers that
// waited for their own timers would miss the bound in most of them.
func TestFollowersStandOnceTheirLeaderIsSilentForAHeartbeatTimeout(t *testing.T) {
	hb := raftnode.TestConfig().HeartbeatTimeout
	// The new leader's first heartbeats (every hb/10) tell the others;
	// the leader is looked for every 5ms.
	bound := hb + hb/10 + hb/10 + 10*time.Millisecond
	for _, size := range []int{3, 5} {
		for run := range 20 {
			t.Run(fmt.Sprintf("nodes=%d/run=%d", size, run), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { electionAfterKill(t, size, bound) })
			})
		}
	}
}

func electionAfterKill(t *testing.T, size int, bound time.Duration) {
	c := clustertest.New(t, size)
	l := leader(t, c)
	term := l.Node().Term()
	c.Kill(l)
	killed := time.Now()
	l = leader(t, c)
	if took := time.Since(killed); took > bound {
		t.Errorf("%s elected %v after the kill, want at most %v", l.ID, took, bound)
	}
	// Followers standing at about the same time must not split the vote:
	// one election, and the leader it made keeps leading.
	<-time.After(time.Second)
	if now := leader(t, c); now != l || now.Node().Term() != term+1 {
		t.Errorf("%s leads in term %d a second after %s was elected, want %s in term %d: more than one election",
			now.ID, now.Node().Term(), l.ID, l.ID, term+1)
	}
}
