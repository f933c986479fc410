package cluster_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// gossipState returns how srv's members list shows name ("" if absent).
func gossipState(srv *cluster.Server, name string) string {
	for _, m := range srv.Members() {
		if m.Name == name {
			return m.Gossip
		}
	}
	return ""
}

// Issue 9: after a graceful leave the leader, which had released the
// node's slots when it took the leave, released them again once the node
// left the ring, logging "released a failed node's semaphore slots". No
// node records a graceful leave as a failure.
func TestGracefulLeaveIsNotLoggedAsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		f := clustertest.NewFleet(t, 3, &cfg)
		leader := threeVoters(t, f)
		leaver := others(f, leader)[0]
		if err := leaver.Server().Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.Kill(leaver)
		eventually(t, time.Minute, "the leaver shown as left", func() bool {
			for _, s := range others(f, leaver) {
				if gossipState(s.Server(), leaver.ID) != "left" {
					return false
				}
			}
			return true
		})
		time.Sleep(3 * cfg.ReleaseGrace) // on the bubble's clock: past any release of a failed node
		for _, l := range tap.Matching(func(l logtest.Line) bool {
			return l.Attrs["server"] == leaver.ID && strings.Contains(l.Msg, "failed node") ||
				l.Attrs["peer"] == leaver.ID && l.Msg == "node left the ring" && l.Attrs["graceful"] != "true"
		}) {
			t.Errorf("a graceful leave logged as a failure: %s", l.Text)
		}
	})
}

// Issue 9: stopping the last node of a cluster took 10 s: its leave
// waited for a leader to take it out of raft, and there was none, nor
// anyone to tell. With no voter up, Leave returns at once (the node keeps
// its seat).
func TestLeaveOfTheLastNodeDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := f.Start(s0, nil)
		f.Start(s1, joinTo(s0))
		eventually(t, time.Minute, "a voter and a non-voter", func() bool {
			v, nv := roles(t, first)
			return len(v) == 1 && len(nv) == 1
		})
		if err := first.Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.Kill(s0)
		eventually(t, time.Minute, "the voter shown as left", func() bool { return gossipState(s1.Server(), s0.ID) == "left" })

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		err := s1.Server().Leave(ctx)
		if took := time.Since(start); took > time.Second {
			t.Errorf("the last node's leave took %v, want no wait", took)
		}
		if err != nil {
			t.Errorf("the last node's leave: %v", err)
		}
	})
}

// A node in the ring but not (yet) in raft left without telling anyone
// (the agent skipped the leave of a node alone in its raft configuration),
// so the others took it for dead. It tells the ring at once, and waits for
// no leader.
func TestLeaveOfANodeNotInRaftTellsTheRingAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := clustertest.NewFleet(t, 2, nil)
		s0, s1 := f.Slots[0], f.Slots[1]
		// Both wait to be added to a cluster that neither starts.
		first := f.Start(s0, func(c *cluster.ServerConfig) { c.Join = []string{"192.0.2.1:7946"} })
		f.Start(s1, joinTo(s0))
		eventually(t, time.Minute, "a ring of two", func() bool { return gossipState(first, s1.ID) == "alive" })

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := s1.Server().Leave(ctx); err != nil {
			t.Errorf("leave: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the leave took %v", took)
		}
		f.Kill(s1)
		eventually(t, time.Minute, "the node shown as left", func() bool { return gossipState(first, s1.ID) == "left" })
	})
}

// The leave policy the agent used to apply itself: a node alone in its
// raft configuration with nobody up in its ring has nothing to leave, and
// the only voter of a cluster is warned that the others cannot elect a
// leader without it.
func TestLeaveSkipsALoneNodeAndWarnsTheOnlyVoter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tap := logtest.New()
		cfg := cluster.TestServerConfig()
		cfg.Raft.Logger = slog.New(tap)
		f := clustertest.NewFleet(t, 2, &cfg)
		s0, s1 := f.Slots[0], f.Slots[1]
		first := f.Start(s0, nil)
		eventually(t, time.Minute, "s0 leads", first.Node().IsLeader)
		said := func(node, msg string) bool {
			return len(tap.Matching(func(l logtest.Line) bool { return l.Attrs["node"] == node && strings.Contains(l.Msg, msg) })) > 0
		}
		logOf := func(node string) (out []string) {
			for _, l := range tap.Matching(func(l logtest.Line) bool { return l.Attrs["node"] == node }) {
				out = append(out, l.Text)
			}
			return out
		}
		if err := first.Leave(t.Context()); err != nil {
			t.Fatalf("the lone node's leave: %v", err)
		}
		if !said(s0.ID, "nothing to leave") || said(s0.ID, "leaving the cluster") {
			t.Errorf("the lone node did not skip its leave: %q", logOf(s0.ID))
		}
		if !first.Node().IsLeader() {
			t.Error("the lone node gave up its leadership")
		}

		f.Start(s1, joinTo(s0))
		eventually(t, time.Minute, "a voter and a non-voter", func() bool {
			v, nv := roles(t, first)
			return len(v) == 1 && len(nv) == 1
		})
		if err := first.Leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !said(s0.ID, "the cluster's only voter") || !said(s0.ID, "leaving the cluster") {
			t.Errorf("the only voter left without the warning: %q", logOf(s0.ID))
		}
	})
}
