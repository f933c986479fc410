package raftnode_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
)

// preVotesSeen records when the followers first received a pre-vote
// request, until stop.
type preVotesSeen struct {
	mu    sync.Mutex
	first time.Time
	stop  func()
}

func watchPreVotes(followers []*clustertest.Member) *preVotesSeen {
	s := &preVotesSeen{}
	ch := make(chan raft.Observation, 16)
	var rafts []*raft.Raft
	var observers []*raft.Observer
	for _, f := range followers {
		obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.RequestPreVoteRequest)
			return ok
		})
		r := raftnode.RaftOf(f.Node())
		r.RegisterObserver(obs)
		rafts, observers = append(rafts, r), append(observers, obs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				s.mu.Lock()
				if s.first.IsZero() {
					s.first = time.Now()
				}
				s.mu.Unlock()
			}
		}
	}()
	s.stop = func() {
		for i, r := range rafts {
			r.DeregisterObserver(observers[i])
		}
		cancel()
		<-done
	}
	return s
}

func (s *preVotesSeen) firstAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// After the leader dies, the first follower to miss it asks the others
// for a pre-vote, which raft refuses while they still have a leader; the
// others, once they have not heard from the leader for a heartbeat timeout
// either (and a random pause of up to a tenth of one), stand at once
// instead of when their own heartbeat timers fire (up to two timeouts
// later), and one is elected with the first one's vote: a leader's death
// costs one election, the faster followers', and only one. Fake time (synctest) makes
// the bound exact; raft's timers are random, so the election runs twenty
// times, and followers that waited for their own timers would miss the
// bound in most of them.
func TestFollowerAskedForAPreVoteStandsOnceItsLeaderIsSilent(t *testing.T) {
	hb := raftnode.TestConfig().HeartbeatTimeout
	// A refusing follower may have heard from the leader up to a
	// heartbeat interval (hb/10) after the candidate did, then pauses up
	// to hb/10; the leader is looked for every 5ms.
	slack := 3*hb/10 + 10*time.Millisecond
	for _, size := range []int{3, 5} {
		for run := range 20 {
			t.Run(fmt.Sprintf("nodes=%d/run=%d", size, run), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { preVoteElection(t, size, slack) })
			})
		}
	}
}

func preVoteElection(t *testing.T, size int, slack time.Duration) {
	c := clustertest.New(t, size)
	l := leader(t, c)
	term := l.Node().Term()
	seen := watchPreVotes(c.Followers(l))
	defer seen.stop()
	c.Kill(l)
	killed := time.Now()
	l = leader(t, c)
	elected := time.Now()
	first := seen.firstAt()
	if first.IsZero() {
		t.Fatalf("%s elected %v after the kill without a pre-vote", l.ID, elected.Sub(killed))
	}
	if late := elected.Sub(first); late > slack {
		t.Errorf("%s elected %v after the kill, %v after the first pre-vote request, want at most %v",
			l.ID, elected.Sub(killed), late, slack)
	}
	// Followers standing at once must not split the vote: one election,
	// and the leader it made keeps leading.
	<-time.After(time.Second)
	if now := leader(t, c); now != l || now.Node().Term() != term+1 {
		t.Errorf("%s leads in term %d a second after %s was elected, want %s in term %d: more than one election",
			now.ID, now.Node().Term(), l.ID, l.ID, term+1)
	}
}
