package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/cluster"
)

// hostIP returns an IPv4 address of this machine other than loopback, one
// a test agent can bind, as a cluster that other hosts can join would.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no IPv4 address other than loopback")
	return ""
}

// startReachableNode starts a node that bootstraps a new cluster on a
// non-loopback address, its output not a terminal, and returns it with the
// key it made.
func startReachableNode(t *testing.T, args ...string) (*testNode, string) {
	t.Helper()
	ip := hostIP(t)
	n := startNode(t, "a", append([]string{"--gossip-addr", ip + ":0", "--cluster-addr", ip + ":0"}, args...)...)
	b, err := os.ReadFile(filepath.Join(n.data, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return n, strings.TrimSpace(string(b))
}

// With --log-format json, stderr holds JSON records only: the join
// command of a new cluster is a record's join_command, not the plain-text
// banner, and, stderr not being a terminal, it holds no key.
func TestJoinBannerIsAJSONRecordWithJSONLogs(t *testing.T) {
	n, key := startReachableNode(t, "--log-format", "json")
	gossip := statusOf(t, "--data-dir", n.data).GossipAddr
	var commands []string
	for _, line := range strings.Split(n.output(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON record: %q", line)
			continue
		}
		if c, ok := rec["join_command"].(string); ok {
			commands = append(commands, c)
		}
	}
	if want := "GRAFT_TOKEN=<the key> graft run --join " + gossip; len(commands) != 1 || commands[0] != want {
		t.Errorf("join commands in the log: %q, want one: %q", commands, want)
	}
	if strings.Contains(n.output(), key) {
		t.Error("the key appeared in the log")
	}
	n.stop()
}

// With text logs, a new cluster that other hosts can reach shows the join
// banner on stderr, once; stderr not being a terminal, without the key.
func TestJoinBannerWithTextLogsShowsTheCommandOnce(t *testing.T) {
	n, key := startReachableNode(t)
	gossip := statusOf(t, "--data-dir", n.data).GossipAddr
	out := n.output()
	if got := strings.Count(out, "    GRAFT_TOKEN=<the key> graft run --join "+gossip+"\n"); got != 1 {
		t.Errorf("the banner's join command appears %d times, want once:\n%s", got, out)
	}
	if !strings.Contains(out, "Copy the key from "+filepath.Join(n.data, tokenFile)) {
		t.Errorf("the banner does not say where the key is:\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Error("the key appeared in the output")
	}
	n.stop()
}

// wrappingHandler passes records on to another handler, as a rate limiter
// or a filter in front of the log's handler does.
type wrappingHandler struct{ slog.Handler }

func (h wrappingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return wrappingHandler{h.Handler.WithAttrs(attrs)}
}

func (h wrappingHandler) WithGroup(name string) slog.Handler {
	return wrappingHandler{h.Handler.WithGroup(name)}
}

// With --log-format json, the join command is a JSON record even when the
// JSON handler is wrapped in another: telling the format by the logger's
// handler type took a wrapped JSON log for a text one, and wrote the
// plain-text banner in the middle of the JSON records.
func TestJoinCommandIsAJSONRecordThroughAWrappedJSONHandler(t *testing.T) {
	var stderr bytes.Buffer
	log := slog.New(wrappingHandler{slog.NewJSONHandler(&stderr, nil)})
	tok := newToken(t)
	showJoinCommand(&stderr, log, logJSON, clusterOptions{clusterName: cluster.DefaultServerConfig().ClusterName},
		"192.0.2.1:7946", tok, "/var/lib/graft/token")
	var commands []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON record: %q", line)
			continue
		}
		if c, ok := rec["join_command"].(string); ok {
			commands = append(commands, c)
		}
	}
	if want := "GRAFT_TOKEN=<the key> graft run --join 192.0.2.1:7946"; len(commands) != 1 || commands[0] != want {
		t.Errorf("join commands: %q, want one: %q", commands, want)
	}
}

// A gossip address on localhost is loopback: the cluster it starts cannot
// be joined from another host, so it gets no banner and no key.
func TestLocalhostGossipAddressIsLoopback(t *testing.T) {
	for _, addr := range []string{"localhost:7946", "LocalHost:0", "127.0.0.1:7946", "[::1]:7946"} {
		if !isLoopback(addr) {
			t.Errorf("isLoopback(%q) = false, want true", addr)
		}
	}
	for _, addr := range []string{"10.0.0.1:7946", "example.com:7946", "localhost", "0.0.0.0:7946"} {
		if isLoopback(addr) {
			t.Errorf("isLoopback(%q) = true, want false", addr)
		}
	}
}
