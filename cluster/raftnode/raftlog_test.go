package raftnode_test

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// Issue 9: with one follower down, raft logged about 30 ERROR lines in
// 10 s, one for every failed heartbeat and append, each with its backoff.
// A message about one peer is logged at most once per 10 s window; a
// later one says how many were suppressed meanwhile.
func TestRaftDoesNotFloodTheLogWhileAFollowerIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		c := clustertest.New(t, 3, clustertest.WithLogger(slog.New(tap)))
		leader, err := c.Leader(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c.Kill(c.Followers(leader)[0])
		killed := time.Now()
		time.Sleep(25 * time.Second) // on the bubble's clock: two and a half windows
		lines := tap.Matching(func(l logtest.Line) bool {
			return l.Level >= slog.LevelWarn && l.Attrs["component"] == "raft" && l.Attrs["node"] == leader.ID &&
				!l.Time.Before(killed)
		})
		perMessage := map[string]int{}
		suppressed := 0
		for _, l := range lines {
			perMessage[l.Msg]++
			if l.Attrs["suppressed"] != "" {
				suppressed++
			}
		}
		for msg, n := range perMessage {
			if n > 3 {
				t.Errorf("the leader logged %q %d times in 25 s with one follower down, want at most 3 (once per 10 s)", msg, n)
			}
		}
		if len(lines) == 0 || suppressed == 0 {
			t.Errorf("%d warnings and errors, %d saying how many were suppressed; want some of each", len(lines), suppressed)
		}
		if t.Failed() {
			for _, l := range lines {
				t.Logf("%v %s", l.Level, l.Text)
			}
		}
	})
}
