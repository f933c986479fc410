package raftnode

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A leader's contact is when the voters it needs for a majority, itself
// included, had all answered it in its term: non-voters and answers of
// another term do not count.
func TestLeaderContactIsTheMajorityOfVotersLastAnswer(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(ms int) time.Time { return now.Add(-time.Duration(ms) * time.Millisecond) }
	voters := func(ids ...string) (out []raft.Server) {
		for _, id := range ids {
			out = append(out, raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter})
		}
		return out
	}
	five := append(voters("me", "a", "b", "c", "d"), raft.Server{ID: "spare", Suffrage: raft.Nonvoter})
	var c contacts
	c.heard("a", 7, ago(10))
	c.heard("b", 7, ago(300))
	c.heard("c", 6, ago(1)) // an earlier term: not in touch with this leader
	c.heard("d", 7, ago(900))
	c.heard("spare", 7, ago(1))
	c.heard("b", 7, ago(500)) // older than what b said since: kept out
	for _, tc := range []struct {
		name    string
		servers []raft.Server
		term    uint64
		want    time.Time
	}{
		{"five voters: itself, a and b", five, 7, ago(300)},
		{"three voters: itself and a", voters("me", "a", "c"), 7, ago(10)},
		{"two voters and a spare: the spare does not count", append(voters("me", "a"), five[5]), 7, ago(10)},
		{"a sole voter", voters("me"), 7, now},
		{"no majority answered in the term", voters("me", "c", "e"), 7, time.Time{}},
		{"not a voter itself", voters("a", "b", "d"), 7, ago(300)},
	} {
		if got := c.quorum("me", tc.term, tc.servers, now); !got.Equal(tc.want) {
			t.Errorf("%s: contact %v ago, want %v ago", tc.name, now.Sub(got), now.Sub(tc.want))
		}
	}
}

// Answered says, by server, when the newest request of the term it
// answered was sent: a server heard from only in another term is absent,
// and a late answer to an older request does not move its time back.
func TestAnsweredIsEachServersNewestAnswerOfTheTerm(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var c contacts
	c.heard("a", 7, now.Add(-10*time.Millisecond))
	c.heard("a", 7, now.Add(-50*time.Millisecond)) // answered late
	c.heard("b", 6, now)
	got := c.answered(7)
	if len(got) != 1 || !got["a"].Equal(now.Add(-10*time.Millisecond)) {
		t.Fatalf("answered in term 7: %v, want only a, 10ms before %v", got, now)
	}
	if got := c.answered(6); len(got) != 1 || !got["b"].Equal(now) {
		t.Fatalf("answered in term 6: %v, want only b at %v", got, now)
	}
}
