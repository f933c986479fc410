package raftnode

import (
	"testing"

	"github.com/hashicorp/raft"
)

// Only a configuration whose one voter is this node lets it elect itself
// at once; non-voters do not count.
func TestSoleVoterIsThisNodeAloneAmongTheVoters(t *testing.T) {
	voter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	nonvoter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Nonvoter} }
	for _, tc := range []struct {
		name    string
		servers []raft.Server
		want    bool
	}{
		{"no configuration", nil, false},
		{"this node alone", []raft.Server{voter("a")}, true},
		{"this node and non-voters", []raft.Server{voter("a"), nonvoter("b"), nonvoter("c")}, true},
		{"another node the only voter", []raft.Server{voter("b")}, false},
		{"this node a non-voter of another voter", []raft.Server{nonvoter("a"), voter("b")}, false},
		{"two voters", []raft.Server{voter("a"), voter("b")}, false},
	} {
		if got := soleVoter(tc.servers, "a"); got != tc.want {
			t.Errorf("%s: soleVoter = %v, want %v", tc.name, got, tc.want)
		}
	}
}
