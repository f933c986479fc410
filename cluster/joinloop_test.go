package cluster_test

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// logsOf returns the lines of tap that node logged with msg since t0.
func logsOf(tap *logtest.Recorder, node, msg string, t0 time.Time) []logtest.Line {
	return tap.Matching(func(l logtest.Line) bool {
		return l.Attrs["node"] == node && l.Msg == msg && !l.Time.Before(t0)
	})
}

// Issue 9: a node started with --join kept warning "could not join yet"
// at every retry after `graft join` had put it in the cluster through
// another member. Its retries stop once it is in a ring with others.
func TestJoinRetriesStopAfterAJoinThroughAnotherMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		f := clustertest.NewFleet(t, 2, &cfg)
		s0, s1 := f.Slots[0], f.Slots[1]
		f.Start(s0, nil)
		srv := f.Start(s1, func(c *cluster.ServerConfig) { c.Join = []string{"192.0.2.1:7946"} })
		t0 := time.Now()
		eventually(t, time.Minute, "a failed attempt to join the seed", func() bool {
			return len(logsOf(tap, s1.ID, "could not join yet; retrying", t0)) > 0
		})
		if _, err := srv.Join([]string{s0.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		joined := time.Now()
		time.Sleep(2 * time.Minute) // on the bubble's clock: several retries' worth
		// A warning of a retry that ended as the join did bears its
		// instant (the bubble's clock stands still meanwhile); a later
		// retry would come at least half a second later.
		if late := logsOf(tap, s1.ID, "could not join yet; retrying", joined.Add(time.Nanosecond)); len(late) > 0 {
			t.Errorf("%d warnings after the node joined, the first: %s", len(late), late[0].Text)
		}
		if len(logsOf(tap, s1.ID, "in the cluster's gossip ring through another member: no longer trying the seeds", joined)) == 0 {
			t.Error("the node did not say it stopped trying its seeds")
		}
	})
}
