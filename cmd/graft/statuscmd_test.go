package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

func TestStatusCommand(t *testing.T) {
	sock, w := testAPI(t)
	if _, err := w.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := graft(t, "status", "--api", sock)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"node:          node0 (node0)", "state:         Leader", "leader:        node0 (this node)",
		"revision:      ", "servers:       node0 node0 voter", "version:       v-test"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = graft(t, "status", "--api", sock, "--json")
	var st api.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %q: %v", code, stdout, err)
	}
	if st.Host != "node0" || st.State != "Leader" || st.Revision != w.Rev() || st.CommitIndex == 0 {
		t.Errorf("status --json: %+v", st)
	}
}

// A follower's status names the leader and its last contact; several
// servers get a line each; the cluster's identity comes first.
func TestPrintStatusFollower(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	err := printStatus(&b, api.Status{Version: "v1", GossipAddr: "10.0.0.2:7946", ClusterID: "c1d", KeyFingerprint: "9dd8e404", RaftStatus: api.RaftStatus{
		ID: "b", Address: "10.0.0.2:7947", State: "Follower", Leader: "a", LeaderAddr: "10.0.0.1:7947",
		Term: 4, LastIndex: 10, CommitIndex: 9, AppliedIndex: 8, Revision: 7, LastContact: now.Add(-150 * time.Millisecond),
		Servers: []api.RaftServer{{ID: "a", Address: "10.0.0.1:7947", Suffrage: "voter"}, {ID: "b", Address: "10.0.0.2:7947", Suffrage: "nonvoter"}},
	}}, now)
	want := `node:          b (10.0.0.2:7947)
gossip:        10.0.0.2:7946
cluster id:    c1d
key:           fingerprint 9dd8e404
state:         Follower
leader:        a (10.0.0.1:7947)
last contact:  150ms ago
term:          4
last index:    10
commit index:  9
applied index: 8
revision:      7
servers:       a 10.0.0.1:7947 voter
               b 10.0.0.2:7947 nonvoter
version:       v1
`
	if err != nil || b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
