package cluster_test

import (
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// With a peer cut off, the leader's raft and memberlist repeat their
// complaints about it at every retry, probe and gossip round (raft's
// heartbeat alone, 540 lines in 35 s unlimited): each message reaches the
// log at most once per 10 s window for each peer or source it names, later
// lines counting the repeats held back ("suppressed").
func TestPeerCutOffDoesNotFloodTheLeadersLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		cfg.DeadServerGrace = time.Hour // the cut-off peer stays a member: its complaints go on
		f, _ := grow3(t, &cfg)
		leader := fleetLeader(t, f)
		var cut *clustertest.Slot
		for _, s := range f.Slots {
			if s != leader {
				cut = s
			}
		}
		f.Partition(cut)
		from := time.Now()
		time.Sleep(35 * time.Second) // on the bubble's clock: four windows begin
		lines := tap.Matching(func(l logtest.Line) bool {
			return l.Level >= slog.LevelInfo && strings.Contains(l.Text, " node="+leader.ID+" ") && !l.Time.Before(from)
		})
		perMessage := map[string]int{}
		suppressed := 0
		for _, l := range lines {
			key := l.Attrs["component"] + ": " + l.Msg
			for _, k := range []string{"peer", "server-id", "target", "remote"} {
				if v := l.Attrs[k]; v != "" {
					key += " " + k + "=" + v
				}
			}
			perMessage[key]++
			if l.Attrs["suppressed"] != "" {
				suppressed++
			}
		}
		for msg, n := range perMessage {
			if n > 4 {
				t.Errorf("the leader logged %q %d times in 35 s with a peer cut off, want at most 4 (once per 10 s)", msg, n)
			}
		}
		if suppressed == 0 {
			t.Errorf("%d lines in 35 s, none saying how many were suppressed: nothing was held back", len(lines))
		}
		if t.Failed() {
			for _, l := range lines {
				t.Logf("%v %s", l.Level, l.Text)
			}
		}
	})
}
