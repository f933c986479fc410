package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// serverTimings are the cluster timings of the agents the tests start.
func serverTimings() cluster.ServerConfig {
	c := cluster.DefaultServerConfig()
	testTimings(&c)
	return c
}

// clusterWait bounds how long a test waits for the cluster to change.
const clusterWait = 20 * time.Second

// testNode is an agent of a test cluster.
type testNode struct {
	*agent
	name, data string
}

// startNode starts an agent named name on a data dir of its own.
func startNode(t *testing.T, name string, args ...string) *testNode {
	t.Helper()
	data := filepath.Join(t.TempDir(), name)
	return &testNode{agent: startTestAgent(t, data, name, args...), name: name, data: data}
}

// members runs `graft members --json` against the node.
func (n *testNode) members(t *testing.T) map[string]api.MemberInfo {
	t.Helper()
	ms, err := n.tryMembers(t)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// tryMembers runs `graft members --json` against the node, and fails if
// it does not answer.
func (n *testNode) tryMembers(t *testing.T) (map[string]api.MemberInfo, error) {
	t.Helper()
	code, stdout, stderr := graft(t, "members", "--json", "--data-dir", n.data)
	if code != 0 {
		return nil, fmt.Errorf("members on %s: exit %d: %s", n.name, code, stderr)
	}
	var ms []api.MemberInfo
	if err := json.Unmarshal([]byte(stdout), &ms); err != nil {
		return nil, fmt.Errorf("members --json on %s: %w: %q", n.name, err, stdout)
	}
	out := map[string]api.MemberInfo{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out, nil
}

// trySuffrages returns the raft servers in the node's status, by name,
// and fails if it does not answer.
func (n *testNode) trySuffrages(t *testing.T) (map[string]string, error) {
	t.Helper()
	st, err := tryStatus(t, "--data-dir", n.data)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range st.Servers {
		out[s.ID] = s.Suffrage
	}
	return out, nil
}

// suffrages returns the raft servers in the node's status, by name.
func (n *testNode) suffrages(t *testing.T) map[string]string {
	t.Helper()
	out, err := n.trySuffrages(t)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitUntil polls cond every 50ms until it holds, failing after
// clusterWait with the last error cond returned. An error means "not
// yet": cond asks agents that may be restarting, whose API does not
// answer for a moment while their gossip still shows them alive, so it
// probes them with tryStatus, tryMembers and trySuffrages, which do not
// fail the test.
func waitUntil(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v (last probe: %v)", what, clusterWait, err)
		}
		<-tick.C
	}
}

// firstNode starts a node that bootstraps a new cluster and returns it,
// its gossip address and the key it made, checking that it showed the
// join command.
func firstNode(t *testing.T, name string) (n *testNode, gossip string, key string) {
	t.Helper()
	n = startNode(t, name)
	st := statusOf(t, "--data-dir", n.data)
	b, err := os.ReadFile(filepath.Join(n.data, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	key = strings.TrimSpace(string(b))
	tok, err := clusterkey.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	if st.GossipAddr == "" || strings.HasSuffix(st.GossipAddr, ":0") || st.KeyFingerprint != tok.Fingerprint() {
		t.Fatalf("status of the first node: gossip %q, key fingerprint %q (the file's is %s)",
			st.GossipAddr, st.KeyFingerprint, tok.Fingerprint())
	}
	// Its gossip address is loopback: a log line, not a banner, shows the
	// join command and where the key is, never the key.
	hint := fmt.Sprintf("GRAFT_TOKEN=<the key> graft run --join %s", st.GossipAddr)
	if got := strings.Count(n.output(), hint); got != 1 {
		t.Errorf("the first node showed the join command %d times, want once: %q", got, hint)
	}
	if strings.Contains(n.output(), key) {
		t.Error("the key appeared in the first node's output")
	}
	return n, st.GossipAddr, key
}

// Nodes join the first one's cluster with its key: the second stays a
// non-voter (two servers allow one voter), the third makes three voters;
// a write on one is read linearizably on another; a node that leaves
// (graft leave, or SIGTERM) is shown as left and taken out of raft.
func TestClusterJoinPromoteLeave(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	join := []string{"--join", gossip, "--token", key}

	b := startNode(t, "b", join...)
	checkTokenFile(t, b.data, mustParse(t, key))
	var contacted time.Time
	waitUntil(t, "b as a non-voter that the leader has checked", func() (bool, error) {
		ms, err := a.tryMembers(t)
		m, ok := ms["b"]
		if ok && m.Role == "nonvoter" && !m.LastContact.IsZero() {
			contacted = time.Now()
			return true, nil
		}
		return false, err
	})
	// Were b eligible, the leader would promote it one reconcile after it
	// has been caught up for Stabilization.
	timings := serverTimings()
	stay := timings.Stabilization + 2*timings.ReconcileInterval
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for time.Since(contacted) < stay {
		ms := a.members(t)
		if ms["b"].Role != "nonvoter" || ms["a"].Role != "leader" || ms["b"].Gossip != "alive" {
			t.Fatalf("with two servers, b must stay a non-voter under leader a: %+v", ms)
		}
		<-tick.C
	}
	if got := a.suffrages(t); len(got) != 2 || got["a"] != "voter" || got["b"] != "nonvoter" {
		t.Errorf("raft servers with two nodes: %v, want a voter and b nonvoter", got)
	}

	c := startNode(t, "c", join...)
	waitUntil(t, "three voters", func() (bool, error) {
		got, err := a.trySuffrages(t)
		return len(got) == 3 && got["a"] == "voter" && got["b"] == "voter" && got["c"] == "voter", err
	})
	if ms := a.members(t); ms["c"].GossipAddr == "" || ms["c"].RaftAddr == "" || ms["c"].Gossip != "alive" {
		t.Errorf("a's view of c: %+v", ms["c"])
	}
	if ca, cc := statusOf(t, "--data-dir", a.data).ClusterID, statusOf(t, "--data-dir", c.data).ClusterID; ca == "" || ca != cc {
		t.Errorf("cluster IDs: a %q, c %q", ca, cc)
	}

	if code, _, stderr := graft(t, "kv", "put", "--data-dir", c.data, "from/c", "hello"); code != 0 {
		t.Fatalf("put on c: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := graft(t, "kv", "get", "--linearizable", "--data-dir", a.data, "from/c")
	if code != 0 || stdout != "hello" {
		t.Errorf("linearizable get on a: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	start := time.Now()
	code, stdout, stderr = graft(t, "leave", "--data-dir", c.data)
	if code != 0 || !strings.Contains(stdout, "has left and stopped") {
		t.Errorf("leave on c: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code := c.exitCode(clusterWait); code != 0 {
		t.Errorf("c exited %d after leaving, want 0", code)
	}
	t.Logf("c left and stopped in %v", time.Since(start))
	if !strings.Contains(c.output(), "left the cluster") {
		t.Error("c did not log that it left")
	}
	waitUntil(t, "c shown as left with two raft servers", func() (bool, error) {
		got, err := a.trySuffrages(t)
		ms, err2 := a.tryMembers(t)
		return ms["c"].Gossip == "left" && len(got) == 2 && got["c"] == "", errors.Join(err, err2)
	})
	if code, stdout, _ := graft(t, "kv", "get", "--data-dir", b.data, "from/c"); code != 0 || stdout != "hello" {
		t.Errorf("after c left, b reads %q (exit %d)", stdout, code)
	}

	// SIGTERM leaves too.
	b.stop()
	waitUntil(t, "b shown as left with one raft server", func() (bool, error) {
		got, err := a.trySuffrages(t)
		ms, err2 := a.tryMembers(t)
		return ms["b"].Gossip == "left" && len(got) == 1 && got["a"] == "voter", errors.Join(err, err2)
	})
}

func mustParse(t *testing.T, key string) clusterkey.Token {
	t.Helper()
	tok, err := clusterkey.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A node with another key never gets in, says why, and never shows the
// key it was given.
func TestJoinWithWrongKeyIsRefused(t *testing.T) {
	a, gossip, _ := firstNode(t, "a")
	wrong, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	d := startNode(t, "d", "--join", gossip, "--token", wrong.Secret())
	d.waitLog(clusterWait, "not in the cluster yet")
	out := d.output()
	if !strings.Contains(out, "fingerprint="+wrong.Fingerprint()) || !strings.Contains(out, "--token or GRAFT_TOKEN") {
		t.Errorf("d's error does not name its key's fingerprint and what to do:\n%s", out)
	}
	if strings.Contains(out, wrong.Secret()) {
		t.Error("d logged its key")
	}
	ms := a.members(t)
	if _, in := ms["d"]; in || len(ms) != 1 {
		t.Errorf("a's members: %+v, want a alone", ms)
	}
	if got := a.suffrages(t); len(got) != 1 {
		t.Errorf("a's raft servers: %v", got)
	}
	// d is still alone, and its own view says so.
	if ms := d.members(t); len(ms) != 1 {
		t.Errorf("d's members: %+v", ms)
	}
}

// `graft leave` on the leader of three healthy voters was refused by the
// new leader, and yet printed "has left and stopped" and exited 0. It
// leaves: the node hands over leadership, is taken out of raft, stops,
// and the two others go on.
func TestLeaderLeavesWithGraftLeave(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	join := []string{"--join", gossip, "--token", key}
	b := startNode(t, "b", join...)
	c := startNode(t, "c", join...)
	waitUntil(t, "three voters", func() (bool, error) {
		got, err := a.trySuffrages(t)
		return len(got) == 3 && got["a"] == "voter" && got["b"] == "voter" && got["c"] == "voter", err
	})
	if st := statusOf(t, "--data-dir", a.data); st.Leader != "a" {
		t.Fatalf("the first node does not lead: %+v", st)
	}
	code, stdout, stderr := graft(t, "leave", "--data-dir", a.data)
	if code != 0 || !strings.Contains(stdout, "has left and stopped") {
		t.Errorf("leave on the leader: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code := a.exitCode(clusterWait); code != 0 {
		t.Errorf("a exited %d after leaving, want 0", code)
	}
	waitUntil(t, "b and c alone in raft, with a leader", func() (bool, error) {
		st, err := tryStatus(t, "--data-dir", b.data)
		got := map[string]string{}
		for _, s := range st.Servers {
			got[s.ID] = s.Suffrage
		}
		return len(got) == 2 && got["a"] == "" && (st.Leader == "b" || st.Leader == "c"), err
	})
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", c.data, "after/a", "1"); code != 0 {
		t.Errorf("put on c after the leader left: exit %d: %s", code, stderr)
	}
}
