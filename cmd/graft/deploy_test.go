package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/api"
)

// startCluster3 starts three agents, a, b and c, on one cluster (b and c
// join a with a's key), each with args (flags, then a subcommand: the
// last word), and waits until a sees all three alive.
func startCluster3(t *testing.T, args ...[]string) []*testNode {
	t.Helper()
	key := strings.TrimSpace(mustGraft(t, "keygen"))
	a := startNode(t, "a", append([]string{"--token", key}, args[0]...)...)
	gossip := statusOf(t, "--data-dir", a.data).GossipAddr
	nodes := []*testNode{a}
	for i, name := range []string{"b", "c"} {
		nodes = append(nodes, startNode(t, name, append([]string{"--join", gossip, "--token", key}, args[i+1]...)...))
	}
	waitUntil(t, "three live members", func() (bool, error) {
		ms, err := a.tryMembers(t)
		return len(ms) == 3 && ms["a"].Gossip == "alive" && ms["b"].Gossip == "alive" && ms["c"].Gossip == "alive", err
	})
	return nodes
}

// mustGraft runs graft in-process and returns its stdout, failing the
// test if it does not exit 0.
func mustGraft(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := graft(t, args...)
	if code != 0 {
		t.Fatalf("graft %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// waitContents waits until each host's file in dir holds the content
// want(host).
func waitContents(t *testing.T, what, dir string, hosts []*testNode, want func(host string) string) {
	t.Helper()
	waitUntil(t, what, func() (bool, error) {
		for _, n := range hosts {
			p := filepath.Join(dir, "out-"+n.name)
			b, err := os.ReadFile(p)
			if err != nil || string(b) != want(n.name) {
				return false, fmt.Errorf("%s holds %q (%v), want %q", p, b, err, want(n.name))
			}
		}
		return true, nil
	})
}

// A templated graph deployed through one agent reaches all three hosts
// following deploys (graft run empty), each expanding it for itself; a
// second deploy, made through another agent, swaps on all of them; a
// rollback to the first restores its content everywhere. A graph with
// errors is refused with its file and line, and stores nothing.
func TestDeployReachesEveryHostAndRollbackRestores(t *testing.T) {
	nodes := startCluster3(t, []string{"empty"}, []string{"empty"}, []string{"empty"})
	a, b, c := nodes[0], nodes[1], nodes[2]
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	deploy := func(n *testNode, version string) {
		t.Helper()
		graph := fmt.Sprintf("template: true\nresources:\n  file:\n  - name: out\n"+
			"    path: \"%s/out-{{ .Hostname }}\"\n    content: \"%s on {{ .Hostname }}\\n\"\n", dir, version)
		if err := os.WriteFile(file, []byte(graph), 0o644); err != nil {
			t.Fatal(err)
		}
		mustGraft(t, "deploy", "yaml", "--data-dir", n.data, file)
	}

	deploy(a, "v1")
	waitContents(t, "deploy 1 on every host", dir, nodes, func(h string) string { return "v1 on " + h + "\n" })
	deploy(b, "v2")
	waitContents(t, "deploy 2 on every host", dir, nodes, func(h string) string { return "v2 on " + h + "\n" })
	if out := mustGraft(t, "deploy", "rollback", "--data-dir", c.data, "1"); !strings.Contains(out, "deploy 3") {
		t.Errorf("rollback printed %q, want it to name deploy 3", out)
	}
	waitContents(t, "deploy 1 again on every host", dir, nodes, func(h string) string { return "v1 on " + h + "\n" })

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("resources:\n  file:\n  - name: x\n    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := graft(t, "deploy", "yaml", "--data-dir", a.data, bad)
	if code != 1 || !strings.Contains(stderr, bad+":4:") {
		t.Errorf("deploy of a bad graph: exit %d, stderr %q; want 1 and the file and line", code, stderr)
	}

	var l api.DeployList
	if err := json.Unmarshal([]byte(mustGraft(t, "deploy", "list", "--json", "--data-dir", b.data)), &l); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range l.Deploys {
		got = append(got, fmt.Sprintf("%d %s %t %d", d.Number, d.Host, d.Current, d.RollbackOf))
	}
	if want := "1 a false 0, 2 b false 0, 3 c true 1"; strings.Join(got, ", ") != want {
		t.Errorf("deploys: %s, want %s", strings.Join(got, ", "), want)
	}
}

// With --cluster-converged, hosts that are converged wait while another
// live host is not, and all exit 0 once it converges too.
func TestClusterConvergedExitsOnceEveryHostIsConverged(t *testing.T) {
	dir := t.TempDir()
	// c's graph stays busy until the gate file exists; a's and b's until
	// the three are members (alone, converged, a exited before b and c
	// joined on a loaded machine).
	gate, formed := filepath.Join(dir, "gate"), filepath.Join(dir, "formed")
	busy := func(name, until string) string {
		graph := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(graph, []byte(fmt.Sprintf("resources:\n  exec:\n  - name: %s\n    shell: /bin/sh\n"+
			"    cmd: 'while [ ! -e %s ]; do sleep 0.05; done'\n", name, until)), 0o644); err != nil {
			t.Fatal(err)
		}
		return graph
	}
	exit := []string{"--converged-timeout", "1", "--converged-exit", "--cluster-converged"}
	nodes := startCluster3(t, append(exit, "yaml", busy("forming", formed)), append(exit, "yaml", busy("forming", formed)),
		append(exit, "yaml", busy("busy", gate)))
	if err := os.WriteFile(formed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range []*testNode{a, b} {
		n.waitLog(clusterWait, `msg="converged; waiting for the cluster's other live hosts to converge" hosts=c`)
	}
	waitUntil(t, "a and b converged and c not, in c's status", func() (bool, error) {
		hosts, err := hostsOf(t, c)
		return hosts["a"] == "true" && hosts["b"] == "true" && hosts["c"] == "false", err
	})
	for _, n := range []*testNode{a, b} {
		select {
		case <-n.done:
			t.Fatalf("%s exited while c was not converged", n.name)
		default:
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if code := n.exitCode(clusterWait); code != 0 {
			t.Errorf("%s exited %d, want 0", n.name, code)
		}
	}
}

// hostsOf returns the converged states in the node's status, by host.
func hostsOf(t *testing.T, n *testNode) (map[string]string, error) {
	t.Helper()
	code, stdout, stderr := graft(t, "status", "--json", "--data-dir", n.data)
	if code != 0 {
		return nil, fmt.Errorf("status on %s: exit %d: %s", n.name, code, stderr)
	}
	var st struct {
		Hosts []hostState `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		return nil, errors.Join(err, fmt.Errorf("status --json: %q", stdout))
	}
	out := map[string]string{}
	for _, h := range st.Hosts {
		out[h.Host] = h.Converged
	}
	return out, nil
}

// graft status answers on a restarted node whose cluster has no leader:
// the hosts' converged states, a read that waits for a leader until the
// node has caught up, are reported as not known rather than failing (or
// holding up) the whole status.
func TestStatusAnswersWithoutALeader(t *testing.T) {
	nodes := startCluster3(t, nil, nil, nil)
	waitUntil(t, "three voters", func() (bool, error) {
		got, err := nodes[0].trySuffrages(t)
		return len(got) == 3 && got["a"] == "voter" && got["b"] == "voter" && got["c"] == "voter", err
	})
	for _, n := range nodes {
		if err := n.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-n.done
	}
	startTestAgent(t, nodes[0].data, "a")
	code, stdout, stderr := graft(t, "status", "--data-dir", nodes[0].data)
	if code != 0 || !strings.Contains(stdout, "leader:        none") || !strings.Contains(stdout, "hosts: not known") {
		t.Errorf("status without a leader: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// graft check and graft deploy validate a templated graph by expanding it
// for this host: a template naming a field that does not exist is an
// error with the file and line, and deploy stores nothing (it does not
// even reach for the agent).
func TestCheckAndDeployRefuseABadTemplate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.yaml")
	src := "template: true\nresources:\n  file:\n  - name: f\n    path: /tmp/f\n    content: \"{{ .Hostnme }}\"\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	want := file + ":6:14: resources.file[0].content: template:"
	if code, _, stderr := graft(t, "check", file); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("check: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	code, _, stderr := graft(t, "deploy", "yaml", "--data-dir", filepath.Join(dir, "no-agent"), file)
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "nothing deployed") {
		t.Errorf("deploy: exit %d, stderr %q; want 1, %q and nothing deployed", code, stderr, want)
	}
	good := strings.Replace(src, "Hostnme", "Hostname", 1)
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := graft(t, "check", file); code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("check of the fixed template: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
