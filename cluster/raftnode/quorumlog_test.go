package raftnode_test

import (
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// A node whose two peers are down starts an election at every election
// timeout for as long as they are: each of its messages is logged at most
// once per 10 s window, whatever its level, the repeats counted in a later
// line's "suppressed".
func TestNodeThatLostItsQuorumDoesNotFloodTheLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		c := clustertest.New(t, 3, clustertest.WithLogger(slog.New(tap)))
		leader, err := c.Leader(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		survivor := c.Followers(leader)[0]
		for _, m := range c.Members {
			if m != survivor {
				c.Kill(m)
			}
		}
		killed := time.Now()
		time.Sleep(65 * time.Second) // on the bubble's clock: six and a half windows
		lines := tap.Matching(func(l logtest.Line) bool {
			// "entering candidate state" has a node attribute of its own
			// (raft's description of itself) after the logger's.
			return l.Level >= slog.LevelInfo && l.Attrs["component"] == "raft" &&
				strings.HasPrefix(l.Text, l.Msg+" node="+survivor.ID+" ") && !l.Time.Before(killed)
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
			// Once per window and peer: 7 windows began in 65 s, for each
			// of the two dead peers.
			if n > 14 {
				t.Errorf("the survivor logged %q %d times in 65 s, want at most 14 (once per 10 s per peer)", msg, n)
			}
		}
		if perMessage["entering candidate state"] == 0 || suppressed == 0 {
			t.Errorf("%d lines, %d saying how many were suppressed, %d elections logged; want some of each",
				len(lines), suppressed, perMessage["entering candidate state"])
		}
		if t.Failed() {
			for _, l := range lines {
				t.Logf("%v %s", l.Level, l.Text)
			}
		}
	})
}
