package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
)

// Issue 9, item 7 (second review): a node that remembered peers but had
// no key (its token removed, say with `rm -r raft token`) made a new
// one, said it started a new cluster with a join command, and waited for
// good: nobody else holds the new key, so it could never be added to
// the cluster it remembers, and a node that remembers peers never starts
// one of its own. It refuses to start, saying what to do, and makes no
// key.
func TestANodeThatRemembersPeersButHasNoKeyRefusesToStartInsteadOfWaitingForever(t *testing.T) {
	data := filepath.Join(t.TempDir(), "b")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	peers := filepath.Join(data, cluster.PeersFile)
	if err := os.WriteFile(peers, []byte(`["127.0.0.1:9"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Before the fix the agent ran on until stopped: this bounds it.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	code, _, stderr := cliContext(ctx, "run", "--data-dir", data, "--hostname", "b")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"--token", peers, "start a new cluster", "127.0.0.1:9"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "started a new cluster") {
		t.Errorf("the node says it started a new cluster:\n%s", stderr)
	}
	if _, err := os.Lstat(filepath.Join(data, tokenFile)); err == nil {
		t.Error("the node made a key")
	}
}

// Issue 9, item 7 (second review): a node on raft state of its own that
// had lost its key made one and said it had started a new cluster,
// which it had not: it restarted its own. Only a node that bootstrapped
// says so.
func TestANodeThatLostItsKeyButNeverHadAPeerDoesNotSayItStartedACluster(t *testing.T) {
	b := startNode(t, "b")
	if code, _, stderr := graft(t, "kv", "put", "--data-dir", b.data, "mine", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	b.stop()
	if err := os.Remove(filepath.Join(b.data, tokenFile)); err != nil {
		t.Fatal(err)
	}
	c := startTestAgent(t, b.data, "b")
	if code, stdout, stderr := graft(t, "kv", "get", "--data-dir", b.data, "mine"); code != 0 || stdout != "1" {
		t.Errorf("the node's own key after the restart: exit %d, %q, %s", code, stdout, stderr)
	}
	if strings.Contains(c.output(), "started a new cluster") {
		t.Errorf("the restarted node says it started a new cluster:\n%s", c.output())
	}
}
