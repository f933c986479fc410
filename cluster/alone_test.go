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

// Issue 9, item 7 (second review): a node without raft state that waits
// to be added to the cluster it remembers waited in silence for good when
// nobody let it in (its key is not theirs, or they moved). Still alone
// after 30 s, it says which file makes it wait and what to do, and again
// only every 10 minutes.
func TestAFreshNodeStillAloneWithRememberedPeersSaysWhatToDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
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
		warned := func() []logtest.Line {
			return tap.Matching(func(l logtest.Line) bool {
				return l.Attrs["node"] == s1.ID && l.Level == slog.LevelWarn && strings.Contains(l.Msg, "--token") &&
					strings.Contains(l.Msg, "remembered peers") && strings.Contains(l.Msg, "start a new cluster")
			})
		}
		time.Sleep(25 * time.Second)
		if n := len(warned()); n != 0 {
			t.Fatalf("warned %d times within 25 s", n)
		}
		time.Sleep(9 * time.Minute)
		lines := warned()
		if len(lines) != 1 || lines[0].Time.Sub(t0) > 35*time.Second {
			t.Fatalf("warned %d times in 9 min (first at %v), want once, about 30 s after the start", len(lines), firstAt(lines, t0))
		}
		if lines[0].Attrs["remembered"] != "["+s0.GossipAddr()+"]" {
			t.Errorf("the warning does not name the peers remembered: %s", lines[0].Text)
		}
		time.Sleep(2 * time.Minute)
		if n := len(warned()); n != 2 {
			t.Errorf("warned %d times in 11 min, want twice", n)
		}
	})
}

// firstAt is when the first of lines was logged, after t0.
func firstAt(lines []logtest.Line, t0 time.Time) time.Duration {
	if len(lines) == 0 {
		return 0
	}
	return lines[0].Time.Sub(t0)
}

// Issue 9, item 7 (third review): a fresh node killed as a leader first
// reached it holds only raft's term, which raft counts as state: it
// logged "raft state found; rejoining the cluster it belongs to", and,
// waiting to be added to the cluster it remembers, never warned when
// nobody let it in. It says it waits to be added, as a fresh node does,
// and warns after 30 s.
func TestANodeHoldingOnlyATermSaysItWaitsToBeAddedAndWarnsWhileAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		f := clustertest.NewFleet(t, 2, &cfg)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := startAlone(t, f, s0)
		if err := s1.SetTerm(first.Node().Term()); err != nil {
			t.Fatal(err)
		}
		f.Kill(s0) // the cluster s1 remembers is gone
		if err := s1.Peers().Save([]string{s0.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		if srv := f.Start(s1, nil); !srv.Node().HasState() {
			t.Fatal("raft does not count a term alone as state: the test needs it to")
		}
		time.Sleep(time.Minute) // on the bubble's clock
		of := func(msg string) int {
			return len(tap.Matching(func(l logtest.Line) bool { return l.Attrs["node"] == s1.ID && strings.Contains(l.Msg, msg) }))
		}
		if n := of("rejoining the cluster it belongs to"); n != 0 {
			t.Errorf("s1, holding only a term, said %d times that it rejoins the cluster its raft state belongs to", n)
		}
		if n := of("waiting to be added to theirs"); n != 1 {
			t.Errorf("s1 said %d times that it waits to be added to the cluster it remembers, want once", n)
		}
		if n := of("no member of the cluster this node remembers has let it in"); n != 1 {
			t.Errorf("s1 warned %d times in a minute alone that nobody lets it in, want once", n)
		}
	})
}
