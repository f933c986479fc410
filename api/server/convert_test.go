package server

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/raftnode"
)

// allSet fails the test if a field of v (a struct) is zero: a field added
// to the cluster's type must be set here, and so carried by the API.
func allSet(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Fatalf("%T.%s is not set in the test", v, rv.Type().Field(i).Name)
		}
	}
}

// sameJSON fails the test unless a and b have the same JSON form.
func sameJSON(t *testing.T, a, b any) {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(ja) != string(jb) {
		t.Errorf("the API's form differs from the cluster's:\n api:     %s\n cluster: %s", ja, jb)
	}
}

// The API's status and member types carry every field of the cluster's,
// under the same JSON names: a field added to the cluster's types without
// the API's would be lost to every client.
func TestAPIWireTypesCarryEveryClusterField(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := raftnode.Status{ID: "a", Address: "10.0.0.1:7947", State: "Follower", Leader: "b", LeaderAddr: "10.0.0.2:7947",
		Term: 2, LastIndex: 9, CommitIndex: 8, AppliedIndex: 7, Revision: 6, LastContact: at,
		Servers: []raftnode.RaftServer{{ID: "b", Address: "10.0.0.2:7947", Suffrage: "voter"}}}
	allSet(t, st)
	allSet(t, st.Servers[0])
	sameJSON(t, fromStatus(st), st)

	m := cluster.MemberInfo{Name: "a", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947", Gossip: "alive",
		Role: "voter", LastContact: at, Version: "v1"}
	allSet(t, m)
	sameJSON(t, fromMembers([]cluster.MemberInfo{m}), []cluster.MemberInfo{m})
	if got := fromMembers(nil); got == nil {
		t.Error("no members is null in JSON, want []")
	}
}
