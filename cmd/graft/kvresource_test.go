package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/clusterkey"
)

// kvGet runs `graft kv get` against the agent on data.
func kvGet(t *testing.T, data, key string) (string, bool) {
	t.Helper()
	code, stdout, _ := graft(t, "kv", "get", "--data-dir", data, key)
	return stdout, code == 0
}

// waitKVGet waits until `graft kv get key` prints want.
func waitKVGet(t *testing.T, data, key, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, ok := kvGet(t, data, key)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("graft kv get %s: %q (found %t), want %q", key, got, ok, want)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
}

// A graph's kv resource sets its key in the agent's World, where `graft kv
// get` reads it, and puts it back when `graft kv put` changes it; a mapped
// kv's entry is listed under the host's name.
func TestAgentKVResourceSetsAndRepairsItsKey(t *testing.T) {
	dir := t.TempDir()
	data, graph := filepath.Join(dir, "d"), filepath.Join(dir, "kv.yaml")
	if err := os.WriteFile(graph, []byte(`graph: kv
resources:
  kv:
  - name: mode
    key: app/mode
    value: blue
  - name: peers
    key: app/peers
    value: h1-addr
    mapped: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startTestAgent(t, data, "h1", "yaml", graph)
	waitKVGet(t, data, "app/mode", "blue")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", data, "app/mode", "red"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	// The agent logs each write it makes: the second is the repair.
	a.waitFor(30*time.Second, "repair (a second write by kv[mode])", func(s string) bool {
		return strings.Count(s, "msg=set resource=kv[mode] ") >= 2
	})
	waitKVGet(t, data, "app/mode", "blue")
	// A mapped key's entries are listed where the README says.
	waitUntil(t, "h1's entry of app/peers", func() (bool, error) {
		code, stdout, stderr := graft(t, "kv", "list", "--data-dir", data, "_graft/host/kv:app%2Fpeers/")
		if code != 0 {
			return false, fmt.Errorf("kv list: exit %d: %s", code, stderr)
		}
		return strings.Contains(stdout, "_graft/host/kv:app%2Fpeers/h1") && strings.Contains(stdout, "h1-addr"), nil
	})
	a.stop()
}

// The engine's World follows the agent's cluster side: when a node that
// never had a peer restarts its side to join another cluster, the handle
// the engine holds reaches the new cluster's World, and a watch started
// before the restart reports it and then follows the key there.
func TestTheEnginesWorldFollowsACLusterSideRestart(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	tok, err := clusterkey.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	b := startInProcess(t, "b", func(o *agentOptions) { o.token = &tok })
	first, replaced := b.worlds.Current()
	if first == nil {
		t.Fatal("no World once the cluster side started")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes, err := b.worlds.KVWatch(ctx, "app/mode")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ask(t.Context(), move{gen: b.current().gen, seeds: []string{gossip}, fresh: true}); err != nil {
		t.Fatal(err)
	}
	inCluster(t, a, "b", b.data)
	select {
	case <-replaced:
	case <-time.After(clusterWait):
		t.Fatal("the World was not replaced when the cluster side restarted")
	}
	waitChange := func(what string) {
		t.Helper()
		select {
		case _, ok := <-changes:
			if !ok {
				t.Fatalf("the watch ended, waiting for %s", what)
			}
		case <-time.After(clusterWait):
			t.Fatalf("the watch did not report %s", what)
		}
	}
	waitChange("the restart")
	if err := b.worlds.KVPut(t.Context(), "from/b", []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitKVGet(t, a.data, "from/b", "1")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", a.data, "app/mode", "green"); code != 0 {
		t.Fatalf("put on a: exit %d: %s", code, stderr)
	}
	// Each report is followed by a read: an earlier report (the new
	// cluster's state arriving as a resync) may come first.
	for {
		waitChange("a change made in the joined cluster")
		v, ok, err := b.worlds.KVGet(t.Context(), "app/mode")
		if err != nil {
			t.Fatal(err)
		}
		if ok && string(v) == "green" {
			return
		}
	}
}
