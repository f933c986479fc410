package cluster_test

import (
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
)

// Issue 9, item 7 (second review): a node without raft state that waits
// to be added to the cluster it remembers waited in silence for good when
// nobody let it in (its key is not theirs, or they moved). Still alone
// after 30 s, it says which file makes it wait and what to do, and again
// only every 10 minutes.
func TestAFreshNodeStillAloneWithRememberedPeersSaysWhatToDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := &logTap{}
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		f := clustertest.NewFleet(t, 2, &cfg)
		s0, s1 := f.Slots[0], f.Slots[1]
		startAlone(t, f, s0)
		f.Kill(s0) // the cluster s1 remembers is gone
		if err := s1.Peers().Save([]string{s0.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		f.Start(s1, nil)
		warned := func() []tapLine {
			return tap.matching(func(l tapLine) bool {
				return l.attrs["node"] == s1.ID && l.level == slog.LevelWarn && strings.Contains(l.msg, "--token") &&
					strings.Contains(l.msg, "remembered peers") && strings.Contains(l.msg, "start a new cluster")
			})
		}
		time.Sleep(25 * time.Second)
		if n := len(warned()); n != 0 {
			t.Fatalf("warned %d times within 25 s", n)
		}
		time.Sleep(9 * time.Minute)
		lines := warned()
		if len(lines) != 1 || lines[0].time.Sub(t0) > 35*time.Second {
			t.Fatalf("warned %d times in 9 min (first at %v), want once, about 30 s after the start", len(lines), firstAt(lines, t0))
		}
		if lines[0].attrs["remembered"] != "["+s0.GossipAddr()+"]" {
			t.Errorf("the warning does not name the peers remembered: %s", lines[0].text)
		}
		time.Sleep(2 * time.Minute)
		if n := len(warned()); n != 2 {
			t.Errorf("warned %d times in 11 min, want twice", n)
		}
	})
}

// firstAt is when the first of lines was logged, after t0.
func firstAt(lines []tapLine, t0 time.Time) time.Duration {
	if len(lines) == 0 {
		return 0
	}
	return lines[0].time.Sub(t0)
}
