package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
	apiserver "github.com/graftcm/graft/api/server"
	"github.com/graftcm/graft/cluster"
)

// The table has a line per member; unknown addresses and contacts are "-".
func TestPrintMembers(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	err := printMembers(&b, []api.MemberInfo{
		{Name: "a", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947", Gossip: "alive", Role: "leader"},
		{Name: "b", GossipAddr: "10.0.0.2:7946", RaftAddr: "10.0.0.2:7947", Gossip: "alive", Role: "nonvoter", LastContact: now.Add(-1500 * time.Millisecond)},
		{Name: "c", RaftAddr: "10.0.0.3:7947", Gossip: "left", Role: "none"},
	}, now)
	want := `NAME  GOSSIP         RAFT           STATE  ROLE      LAST CONTACT
a     10.0.0.1:7946  10.0.0.1:7947  alive  leader    -
b     10.0.0.2:7946  10.0.0.2:7947  alive  nonvoter  1.5s ago
c     -              10.0.0.3:7947  left   none      -
`
	if err != nil || b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestMembersCommand(t *testing.T) {
	fc := &apitest.FakeCluster{Nodes: []cluster.MemberInfo{
		{Name: "a", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947", Gossip: "alive", Role: "leader"},
		{Name: "b", GossipAddr: "10.0.0.2:7946", RaftAddr: "10.0.0.2:7947", Gossip: "suspect", Role: "voter",
			LastContact: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)},
	}}
	sock, _, _ := testAPIWith(t, func(c *apiserver.Config) { c.Cluster = fc })
	code, stdout, stderr := graft(t, "members", "--api", sock)
	if code != 0 || !bytes.Contains([]byte(stdout), []byte("b     10.0.0.2:7946  10.0.0.2:7947  suspect  voter   ")) {
		t.Errorf("members: exit %d, stderr %q, stdout\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = graft(t, "members", "--api", sock, "--json")
	var got []cluster.MemberInfo
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("members --json: exit %d, %v, stderr %q, stdout %q", code, err, stderr, stdout)
	}
	if !reflect.DeepEqual(got, fc.Nodes) {
		t.Errorf("members --json: %+v, want %+v", got, fc.Nodes)
	}
	if code, _, _ := graft(t, "members", "--api", sock, "extra"); code != exitUsage {
		t.Errorf("members with an argument: exit %d, want %d", code, exitUsage)
	}
}
