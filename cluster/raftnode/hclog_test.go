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

// Raft's info lines repeat with every election while a node has lost its
// quorum: they are limited per message as warnings are, and the next line
// let through says how many were held back. The lines that mark a change
// of role or configuration all get through.
func TestRaftInfoRepeatsAreLimitedButRoleChangesAreNot(t *testing.T) {
	logs := logtest.New()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newHclogAt(slog.New(logs), "raft", clock.now)
	for i := range 1000 {
		h.Info("entering candidate state", "term", i+2)
		h.Info("pre-vote campaign failed, waiting for election timeout", "term", i+2, "tally", 1)
		clock.t = clock.t.Add(time.Millisecond)
	}
	for _, msg := range raftChanges() {
		for range 3 {
			h.Info(msg)
		}
	}
	lines := logs.Lines()
	if len(lines) != 2+3*len(raftChanges()) {
		t.Errorf("%d lines for 2,000 repeated info lines and %d role changes, want %d:\n%s",
			len(lines), 3*len(raftChanges()), 2+3*len(raftChanges()), strings.Join(lines, "\n"))
	}
	clock.t = clock.t.Add(raftLogWindow)
	h.Info("entering candidate state", "term", 1002)
	if l := logs.Lines()[len(lines)]; !strings.Contains(l, `suppressed="999"`) {
		t.Errorf("the next window's line %q does not say 999 were suppressed", l)
	}
}
