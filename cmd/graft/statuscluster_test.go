package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// statusWait bounds how long the status tests wait for their cluster to
// settle: three agents built with the race detector start slowly on a
// loaded machine.
const statusWait = 90 * time.Second

// updateCaptureEnv, set to 1, makes TestStatusOfThreeAgents write the
// captures in docs/ instead of comparing with them (make status-capture).
const updateCaptureEnv = "GRAFT_UPDATE_STATUS_CAPTURE"

// The captures of `graft status` on a three-node cluster: its text form,
// and the same run in a terminal multiplexer.
const (
	statusCapture     = "../../docs/status.txt"
	statusTmuxCapture = "../../docs/status-tmux.txt"
)

// statusGraph is each host's graph: a file put in place and a command
// that fails, so that the capture shows both.
const statusGraph = `graph: demo
resources:
  file:
  - name: motd
    path: %s
    content: "hello\n"
  exec:
  - name: broken
    cmd: "echo oops >&2; exit 3"
    shell: /bin/sh
`

// report runs `graft status --json` against the node.
func (n *testNode) report(t *testing.T) (statusReport, error) {
	t.Helper()
	code, stdout, stderr := graft(t, "status", "--json", "--data-dir", n.data)
	if code != 0 {
		return statusReport{}, fmt.Errorf("status on %s: exit %d: %s", n.name, code, stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		return statusReport{}, fmt.Errorf("status --json on %s: %w: %q", n.name, err, stdout)
	}
	return rep, nil
}

// waitReport polls the node's status until cond accepts it, failing
// after statusWait with cond's last complaint.
func waitReport(t *testing.T, n *testNode, what string, cond func(statusReport) error) statusReport {
	t.Helper()
	deadline := time.Now().Add(statusWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		rep, err := n.report(t)
		if err == nil {
			err = cond(rep)
		}
		if err == nil {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s on %s within %v: %v", what, n.name, statusWait, err)
		}
		<-tick.C
	}
}

// startStatusNode starts an agent running statusGraph, converged after a
// second without changes.
func startStatusNode(t *testing.T, name string, args ...string) *testNode {
	t.Helper()
	dir := t.TempDir()
	graph := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(graph, fmt.Appendf(nil, statusGraph, filepath.Join(dir, "motd")), 0o644); err != nil {
		t.Fatal(err)
	}
	return startNode(t, name, append(args, "--converged-timeout", "1", "yaml", graph)...)
}

// graft status on three real agents: the cluster's fields in --json as a
// second node joins as a non-voter and a third makes three voters, the
// text form as docs/status.txt captured it, and a node killed shown dead.
func TestStatusOfThreeAgents(t *testing.T) {
	key := strings.TrimSpace(mustGraft(t, "keygen"))
	web1 := startStatusNode(t, "web1", "--token", key)
	join := []string{"--token", key, "--join", statusOf(t, "--data-dir", web1.data).GossipAddr}
	web2 := startStatusNode(t, "web2", join...)
	waitReport(t, web1, "web2 as a non-voter", func(r statusReport) error {
		if c := r.Cluster; !slices.Equal(c.Voters, []string{"web1"}) || !slices.Equal(c.NonVoters, []string{"web2"}) ||
			roleOf(r, "web2") != "nonvoter" || roleOf(r, "web1") != "leader" {
			return fmt.Errorf("cluster %+v, hosts %+v", c, r.Hosts)
		}
		return nil
	})
	web3 := startStatusNode(t, "web3", join...)
	nodes := []*testNode{web1, web2, web3}

	var leader *testNode
	var lrep statusReport
	waitReport(t, web1, "three voters, all alive and converged", func(r statusReport) error {
		all := []string{"web1", "web2", "web3"}
		c := r.Cluster
		if !slices.Equal(c.Voters, all) || len(c.NonVoters) != 0 || !slices.Equal(c.Alive, all) || !slices.Equal(c.Converged, all) {
			return fmt.Errorf("cluster %+v", c)
		}
		for _, n := range nodes {
			if n.name == c.Leader {
				leader = n
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader among the nodes: %+v", c)
		}
		var err error
		lrep, err = leader.report(t)
		if err != nil {
			return err
		}
		if lrep.State != "Leader" || lrep.Resources == nil || !lrep.Resources.Converged {
			return fmt.Errorf("the leader %s: state %s, resources %+v", leader.name, lrep.State, lrep.Resources)
		}
		for _, h := range lrep.Hosts {
			if h.Host != leader.name && h.LastContact.IsZero() {
				return fmt.Errorf("the leader has no contact with %s yet", h.Host)
			}
		}
		return nil
	})

	t.Run("json", func(t *testing.T) { checkClusterJSON(t, nodes, leader, lrep) })
	t.Run("text matches docs/status.txt", func(t *testing.T) { checkStatusCapture(t, leader) })

	var victim *testNode
	for _, n := range nodes {
		if n != leader {
			victim = n
		}
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	rep := waitReport(t, leader, victim.name+" dead", func(r statusReport) error {
		if !slices.Equal(r.Cluster.Dead, []string{victim.name}) || slices.Contains(r.Cluster.Alive, victim.name) {
			return fmt.Errorf("cluster %+v", r.Cluster)
		}
		return nil
	})
	if h := reportHost(rep, victim.name); h.Gossip != "dead" {
		t.Errorf("the dead node's row: %+v", h)
	}
	code, stdout, stderr := graft(t, "status", "--data-dir", leader.data)
	row := regexp.MustCompile(`(?m)^` + victim.name + ` +dead +`)
	if code != 0 || !strings.Contains(stdout, "hosts:         3 (2 alive, 1 dead, 0 left)") || !row.MatchString(stdout) {
		t.Errorf("status with %s dead: exit %d, stderr %q, stdout:\n%s", victim.name, code, stderr, stdout)
	}
}

// checkClusterJSON checks the cluster's fields of status --json on the
// leader (lrep) and on a follower.
func checkClusterJSON(t *testing.T, nodes []*testNode, leader *testNode, lrep statusReport) {
	if lrep.Cluster.Leader != leader.name || lrep.Cluster.Term != lrep.Term || lrep.Term == 0 {
		t.Errorf("leader's cluster summary %+v (term %d)", lrep.Cluster, lrep.Term)
	}
	for _, l := range [][]string{lrep.Cluster.Suspect, lrep.Cluster.Dead, lrep.Cluster.Left, lrep.Cluster.NotConverged, lrep.Cluster.ConvergedUnknown} {
		if l == nil || len(l) != 0 {
			t.Errorf("want empty lists: %+v", lrep.Cluster)
		}
	}
	if len(lrep.Hosts) != 3 {
		t.Fatalf("hosts: %+v", lrep.Hosts)
	}
	for _, h := range lrep.Hosts {
		role, contact := "voter", true
		if h.Host == leader.name {
			role, contact = "leader", false
		}
		age := time.Since(h.LastContact)
		if h.Role != role || h.Gossip != "alive" || h.Converged != "true" || contact != !h.LastContact.IsZero() ||
			contact && (age < -time.Second || age > statusWait) {
			t.Errorf("the leader's row of %s: %+v", h.Host, h)
		}
	}
	if r := lrep.Resources; r.Counts.Total != 2 || r.Counts.Failed != 1 || r.Counts.OK != 1 {
		t.Errorf("the leader's resources: %+v", r.Counts)
	}
	var follower *testNode
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	// A follower names the same leader and term (once it has heard of
	// them: an election may come between the two reads), knows when it
	// last heard from the leader, and nobody else's contact.
	waitReport(t, follower, "the leader's name, term and contact", func(r statusReport) error {
		lr, err := leader.report(t)
		if err != nil {
			return err
		}
		if r.Cluster.Leader != lr.Cluster.Leader || r.Cluster.Term != lr.Cluster.Term || r.State != "Follower" {
			return fmt.Errorf("follower %+v, leader %+v", r.Cluster, lr.Cluster)
		}
		for _, h := range r.Hosts {
			if (h.Host == r.Cluster.Leader) == h.LastContact.IsZero() {
				return fmt.Errorf("the follower's row of %s: %+v", h.Host, h)
			}
		}
		return nil
	})
}

func roleOf(r statusReport, host string) string { return reportHost(r, host).Role }

func reportHost(r statusReport, host string) hostState {
	for _, h := range r.Hosts {
		if h.Host == host {
			return h
		}
	}
	return hostState{}
}

// checkStatusCapture runs `graft status` on the leader and compares its
// text with docs/status.txt, and, where tmux is installed, a tmux capture
// with docs/status-tmux.txt, after normalising what varies from run to
// run. With GRAFT_UPDATE_STATUS_CAPTURE=1 it writes them instead.
func checkStatusCapture(t *testing.T, leader *testNode) {
	var text string
	waitUntilFor(t, statusWait, "a status from the leader", func() error {
		code, stdout, stderr := graft(t, "status", "--data-dir", leader.data)
		if code != 0 || !strings.Contains(stdout, "\nstate:         Leader\n") {
			return fmt.Errorf("exit %d, stderr %q, stdout %q", code, stderr, stdout)
		}
		text = stdout
		return nil
	})
	update := os.Getenv(updateCaptureEnv) == "1"
	compareCapture(t, statusCapture, text, update)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Logf("tmux is not installed: %s not checked", statusTmuxCapture)
		return
	}
	compareCapture(t, statusTmuxCapture, tmuxStatus(t, leader.data), update)
}

// compareCapture compares got with the capture in file, both normalised,
// or writes got to file if update.
func compareCapture(t *testing.T, file, got string, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", file)
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (make status-capture writes it)", err)
	}
	if want, got := normaliseStatus(string(b)), normaliseStatus(got); got != want {
		t.Errorf("graft status no longer prints what %s shows: if the change is meant, run make status-capture.\n"+
			"normalised, it prints:\n%s\nthe capture:\n%s\nit printed:\n%s", file, got, want, got)
	}
}

// tmuxStatus runs `graft status` in a tmux session of its own (its own
// server socket) and returns the screen.
func tmuxStatus(t *testing.T, data string) string {
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	script := fmt.Sprintf("echo '$ graft status'; GRAFT_TEST_BINARY=1 GORACE=atexit_sleep_ms=0 %s status --data-dir %s; echo '$'; exec sleep 3600",
		shellQuote(os.Args[0]), shellQuote(data))
	if _, err := tmux("new-session", "-d", "-x", "100", "-y", "40", "-s", "status", script); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = tmux("kill-server") })
	var screen string
	waitUntilFor(t, statusWait, "graft status on the tmux screen", func() error {
		out, err := tmux("capture-pane", "-p", "-J", "-t", "status")
		if err != nil {
			return err
		}
		if screen = strings.TrimRight(out, "\n") + "\n"; !strings.HasSuffix(screen, "\n$\n") {
			return fmt.Errorf("the screen so far: %q", screen)
		}
		return nil
	})
	return screen
}

// waitUntilFor polls cond every 100ms until it returns nil, failing after
// limit with its last error.
func waitUntilFor(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: %v", what, limit, err)
		}
		<-tick.C
	}
}

// statusVarying are what varies in `graft status` from run to run, and
// what the comparison puts in its place.
var statusVarying = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?m)^(cluster id|version|term|last index|commit index|applied index|revision):( +)\S+$`), "$1:${2}X"},
	{regexp.MustCompile(`fingerprint [0-9a-f]+`), "fingerprint FP"},
	{regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}:\d+\b`), "ADDR"},
	{regexp.MustCompile(`\bweb[1-3]\b`), "HOST"},
	{regexp.MustCompile(`\b\d+(?:\.\d+)?(?:ns|µs|ms|s|m|h)(?:\d+(?:\.\d+)?(?:µs|ms|s))*`), "DUR"},
	{regexp.MustCompile(` {2,}`), " "},
	{regexp.MustCompile(`(?m) +$`), ""},
}

// normaliseStatus replaces what varies in a status by placeholders,
// collapses the alignment (which follows the values' widths) and sorts
// the rows of the hosts' table (whose roles follow which host leads).
func normaliseStatus(s string) string {
	for _, v := range statusVarying {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && strings.HasPrefix(lines[j], "HOST ") {
			j++
		}
		sort.Strings(lines[i:j])
		i = max(j, i+1)
	}
	return strings.Join(lines, "\n")
}
