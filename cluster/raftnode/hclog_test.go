package raftnode

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/internal/logtest"
	"github.com/hashicorp/raft"
)

// Raft's repeats are limited per message and peer: other peers, other
// messages and info lines still get through, and so do copies made by
// Named and With, which share the limit.
func TestRaftLogLimitIsPerMessageAndPeer(t *testing.T) {
	logs := logtest.New()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newHclogAt(slog.New(logs), "raft", clock.now)
	peer := raft.Server{ID: "b", Address: "10.0.0.2:7947"}
	for range 30 {
		h.Error("failed to appendEntries to", "peer", peer, "error", "connection refused")
		h.Named("x").Error("failed to appendEntries to", "peer", peer, "error", "connection refused")
		h.With("k", "v").Error("failed to heartbeat to", "peer", "10.0.0.2:7947", "error", "refused")
		h.Info("entering follower state")
		clock.t = clock.t.Add(100 * time.Millisecond)
	}
	h.Error("failed to appendEntries to", "peer", raft.Server{ID: "c"}, "error", "connection refused")
	got := logs.Lines()
	count := func(prefix string) int {
		n := 0
		for _, l := range got {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	if n := count("failed to appendEntries to") - 1; n != 2 { // Named's own name keys its own limit
		t.Errorf("%d lines about b's appends, want one per logger name (2)", n)
	}
	if n := count("failed to heartbeat to"); n != 1 {
		t.Errorf("%d heartbeat lines, want 1", n)
	}
	if n := count("entering follower state"); n != 30 {
		t.Errorf("%d info lines, want all 30", n)
	}
	if l := got[len(got)-1]; !strings.Contains(l, `peer="{Voter c }"`) {
		t.Errorf("the line about another peer was suppressed; last line %q", l)
	}

	clock.t = clock.t.Add(raftLogWindow)
	h.Error("failed to heartbeat to", "peer", "10.0.0.2:7947", "error", "refused")
	if l := logs.Lines()[len(got)]; !strings.Contains(l, `suppressed="29"`) {
		t.Errorf("the next window's line %q does not say 29 were suppressed", l)
	}
}
