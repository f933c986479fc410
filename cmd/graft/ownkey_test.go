package main

import (
	"strings"
	"testing"
)

// Issue 9, item 7 (second review): a join over the API's TCP address was
// refused (403) whenever it carried a key, the node's own key too, which
// moves nothing. A join with the key the node holds is a plain join; any
// other key is still refused there.
func TestAJoinOverTCPWithTheNodesOwnKeyIsAPlainJoin(t *testing.T) {
	a, gossip, key := firstNode(t, "a")
	b := startNode(t, "b", "--join", gossip, "--token", key, "--api-addr", "127.0.0.1:0", "--log-format", "json")
	inCluster(t, a, "b", b.data)
	addr := "http://" + logAttr(t, b.output(), "local API listening", "address")
	code, stdout, stderr := graft(t, "join", "--api", addr, "--token", key, gossip)
	if code != 0 || !strings.Contains(stdout, "joined the cluster") {
		t.Errorf("a join over TCP with the node's own key: exit %d, stdout %q, stderr %q; want it joined", code, stdout, stderr)
	}
	code, _, stderr = graft(t, "join", "--api", addr, "--token", newToken(t).Secret(), gossip)
	if code != 1 || !strings.Contains(stderr, "unix socket") {
		t.Errorf("a join over TCP with another key: exit %d, stderr %q; want 1, naming the unix socket", code, stderr)
	}
}
