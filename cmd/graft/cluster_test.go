package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// startTestAgent starts `graft run` on dataDir as host and waits until its
// local API listens.
func startTestAgent(t *testing.T, dataDir, host string, args ...string) *agent {
	t.Helper()
	a := startAgent(t, append([]string{"run", "--data-dir", dataDir, "--hostname", host}, args...)...)
	a.waitLog(20*time.Second, "local API listening")
	return a
}

// stop stops an agent with SIGTERM and checks it exits 0.
func (a *agent) stop() {
	a.t.Helper()
	a.signal(syscall.SIGTERM)
	if code := a.exitCode(20 * time.Second); code != 0 {
		a.t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// A key written through one agent is still there after the agent restarts
// on the same data dir, and a plain read right after the restart sees it.
func TestKVSurvivesRestart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	a := startTestAgent(t, data, "h1")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "a", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	a.stop()
	if _, err := os.Stat(filepath.Join(data, apiSocket)); !os.IsNotExist(err) {
		t.Errorf("the socket outlived the agent: %v", err)
	}

	b := startTestAgent(t, data, "h1")
	if !strings.Contains(b.output(), "raft state found") {
		t.Error("the restarted agent did not find its raft state")
	}
	code, stdout, stderr := graft(t, "kv", "get", "--data-dir", data, "a")
	if code != 0 || stdout != "1" {
		t.Errorf("get after restart: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	b.stop()
}

// kv watch, in a process of its own, streams the changes another client
// makes, in order.
func TestKVWatchSeesOtherClients(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	a := startTestAgent(t, data, "h1")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "seed", "0"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	rev := statusOf(t, "--data-dir", data).Revision

	// Watch the prefix k: graft's own keys (the cluster ID, written once
	// the node leads) change under an empty one too.
	w := startAgent(t, "kv", "watch", "--data-dir", data, "--rev", fmt.Sprint(rev), "k")
	for _, v := range []string{"1", "2"} {
		if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "k", v); code != 0 {
			t.Fatalf("put: exit %d: %s", code, stderr)
		}
	}
	w.waitFor(20*time.Second, "both events in order", func(s string) bool {
		i, j := strings.Index(s, "PUT k=1 rev="), strings.Index(s, "PUT k=2 rev=")
		return i >= 0 && j > i
	})
	w.signal(os.Interrupt)
	if code := w.exitCode(10 * time.Second); code != 0 {
		t.Errorf("kv watch exit code %d after an interrupt, want 0", code)
	}
	lines := strings.Split(strings.TrimSpace(w.output()), "\n")
	var r1, r2 uint64
	if len(lines) != 2 {
		t.Fatalf("kv watch printed %q, want two lines", lines)
	}
	_, err1 := fmt.Sscanf(lines[0], "PUT k=1 rev=%d", &r1)
	_, err2 := fmt.Sscanf(lines[1], "PUT k=2 rev=%d", &r2)
	if err1 != nil || err2 != nil || r1 <= rev || r2 <= r1 {
		t.Errorf("kv watch printed %q; want revisions growing from after %d", lines, rev)
	}
	a.stop()
}

// statusOf runs `graft status --json` and decodes it.
func statusOf(t *testing.T, args ...string) api.Status {
	t.Helper()
	st, err := tryStatus(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tryStatus runs `graft status --json` and decodes it, failing if no
// agent answers.
func tryStatus(t *testing.T, args ...string) (api.Status, error) {
	t.Helper()
	code, stdout, stderr := graft(t, append([]string{"status", "--json"}, args...)...)
	if code != 0 {
		return api.Status{}, fmt.Errorf("status: exit %d: %s", code, stderr)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		return api.Status{}, fmt.Errorf("status --json: %w: %q", err, stdout)
	}
	return st, nil
}

// graft status shows a lone node as the leader of its one-node cluster;
// with --api-addr the API answers on loopback TCP too.
func TestStatusShowsThisNodeAsLeader(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	a := startTestAgent(t, data, "h1", "--api-addr", "127.0.0.1:0", "--log-format", "json")
	a.waitLog(20*time.Second, "this node is the cluster leader")

	code, stdout, stderr := graft(t, "status", "--data-dir", data)
	for _, want := range []string{"node:          h1 (127.0.0.1:", "state:         Leader", "leader:        h1 (this node)", "servers:       h1 127.0.0.1:"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("status: exit %d, stderr %q, output lacks %q:\n%s", code, stderr, want, stdout)
		}
	}

	addr := logAttr(t, a.output(), "local API listening", "address")
	st := statusOf(t, "--api", "http://"+addr)
	if st.Host != "h1" || st.State != "Leader" || st.Leader != "h1" || len(st.Servers) != 1 {
		t.Errorf("status over TCP: %+v", st)
	}
	a.stop()
}

// logAttr returns attribute key of the first JSON log record with msg.
func logAttr(t *testing.T, log, msg, key string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			if v, ok := rec[key].(string); ok {
				return v
			}
		}
	}
	t.Fatalf("no %q record with %q in the log", msg, key)
	return ""
}

// The API is unauthenticated, so it refuses to listen beyond loopback.
func TestAPIAddrMustBeLoopback(t *testing.T) {
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--api-addr", "0.0.0.0:0")
	if code != exitUsage || !strings.Contains(stderr, "not a loopback address") {
		t.Errorf("exit %d, stderr %q; want %d and a loopback error", code, stderr, exitUsage)
	}
	if code, _, stderr := graft(t, "run", "--tmp-prefix", "--cluster-addr", "nonsense"); code != exitUsage || !strings.Contains(stderr, "--cluster-addr") {
		t.Errorf("bad --cluster-addr: exit %d, stderr %q", code, stderr)
	}
}

// Two agents cannot share a data dir; the second says so and exits 1,
// leaving the first one's socket alone.
func TestTwoAgentsCannotShareADataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	a := startTestAgent(t, data, "h1")
	code, _, stderr := graft(t, "run", "--data-dir", data, "--hostname", "h1")
	if code != 1 || !strings.Contains(stderr, "in use by another graft agent") {
		t.Errorf("second agent: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "k", "v"); code != 0 {
		t.Errorf("the first agent no longer answers: exit %d: %s", code, stderr)
	}
	a.stop()
}

// A data dir remembers its node's name: started under another, the agent
// fails and says which --hostname to use. (The runs are given a key, so
// they keep their cluster: a one-shot run without one keeps nothing.)
func TestNodeIDMismatchFails(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	once := []string{"--converged-timeout=0", "--converged-exit", "--token", tok.Secret()}
	if code, _, stderr := graft(t, append([]string{"run", "--data-dir", data, "--hostname", "alpha"}, once...)...); code != 0 {
		t.Fatalf("first start: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(data, nodeIDFile)); err != nil || string(b) != "alpha\n" {
		t.Fatalf("node-id holds %q, %v", b, err)
	}
	code, _, stderr := graft(t, append([]string{"run", "--data-dir", data, "--hostname", "beta"}, once...)...)
	if code != 1 || !strings.Contains(stderr, `belongs to node "alpha"`) || !strings.Contains(stderr, "--hostname alpha") {
		t.Errorf("start as beta: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := graft(t, append([]string{"run", "--data-dir", data, "--hostname", "alpha"}, once...)...); code != 0 {
		t.Errorf("second start as alpha: exit %d: %s", code, stderr)
	}
}

func TestCheckNodeID(t *testing.T) {
	dir := t.TempDir()
	if err := checkNodeID(dir, "a"); err != nil {
		t.Fatal(err)
	}
	if err := checkNodeID(dir, "a"); err != nil {
		t.Errorf("same name again: %v", err)
	}
	if err := checkNodeID(dir, "b"); err == nil || !strings.Contains(err.Error(), "--hostname a") {
		t.Errorf("another name: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkNodeID(dir, "a"); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty node-id file: %v", err)
	}
}

// A socket left by a killed agent does not stop the next one.
func TestStaleSocketIsReplaced(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(data, apiSocket), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	a := startTestAgent(t, data, "h1")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "k", "v"); code != 0 {
		t.Errorf("put: exit %d: %s", code, stderr)
	}
	a.stop()
}

// A cluster port in use (say, by another agent) is reported with a hint.
func TestClusterPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--cluster-addr", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "--cluster-addr") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// A gossip port in use is told from a cluster port in use (memberlist's
// error is text only; the cluster package classifies it), and the hint
// names the gossip flag.
func TestGossipPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--cluster-addr", "127.0.0.1:0", "--gossip-addr", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "--gossip-addr") ||
		strings.Contains(stderr, "--cluster-addr") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// Bad cluster flags are usage errors, and a bad key is never echoed.
func TestClusterFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--voters", "4"}, "--voters: 4 is not an odd number"},
		{[]string{"--voters", "0"}, "--voters: 0"},
		{[]string{"--bootstrap-expect", "-1"}, "--bootstrap-expect: -1"},
		{[]string{"--bootstrap-expect", "7"}, "--bootstrap-expect 7 is more than --voters 5"},
		{[]string{"--gossip-addr", "nonsense"}, "--gossip-addr"},
		{[]string{"--gossip-addr", "localhost:7946"}, "want an IP address"},
		{[]string{"--gossip-addr", "[::]:7946"}, "--advertise-addr"},
		{[]string{"--advertise-addr", "10.0.0.1"}, "needs a fixed --cluster-addr port"},
		{[]string{"--cluster-addr", "127.0.0.1:7947", "--advertise-addr", "host.example"}, "want an IP address"},
		{[]string{"--cluster-addr", "127.0.0.1:7947", "--advertise-addr", "0.0.0.0"}, "unspecified"},
		{[]string{"--cluster-name", ""}, "--cluster-name is empty"},
		{[]string{"--token", "graft1_notakey-SECRETISH"}, "--token (or GRAFT_TOKEN): invalid cluster key"},
	} {
		code, _, stderr := graft(t, append([]string{"run", "--tmp-prefix"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
		if strings.Contains(stderr, "SECRETISH") {
			t.Errorf("%q: the key is echoed: %q", tc.args, stderr)
		}
	}
}

// A node told to join without the cluster's key exits at once, saying
// where the key is.
func TestJoinWithoutKeyFails(t *testing.T) {
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--join", "127.0.0.1:1")
	if code != exitUsage || !strings.Contains(stderr, "joining a cluster needs its key: --token or GRAFT_TOKEN (see the first node's log)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
