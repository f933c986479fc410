package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildGraft builds the graft binary (without -race: the driver measures
// it, it does not test it) into a temporary directory.
func buildGraft(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "graft")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/graftcm/graft/cmd/graft").CombinedOutput()
	if err != nil {
		t.Fatalf("building graft: %v\n%s", err, out)
	}
	return bin
}

// quickFigures are the figures a quick run without peers reports.
var quickFigures = []string{
	"chain 100 noops, start to converged", "chain 100 noops, CPU (user+sys, to exit)", "chain 100 noops, peak RSS",
	"fan 100 noops, start to converged", "fan 100 noops, CPU (user+sys, to exit)", "fan 100 noops, peak RSS",
	"dag 100 noops, start to converged", "dag 100 noops, CPU (user+sys, to exit)", "dag 100 noops, peak RSS",
	"20 files, start to converged", "20 files, CPU (user+sys, to exit)", "20 files, peak RSS",
	"one-resource swap in 100 noops", "drift to repair (a deleted file, 100-noop graph)",
	"3 nodes, writes, 1 client to the leader", "3 nodes, writes, 1 client to the leader, p50",
	"3 nodes, writes, 1 client to the leader, p99",
	"3 nodes, writes, 1 client to a follower", "3 nodes, writes, 1 client to a follower, p50",
	"3 nodes, writes, 1 client to a follower, p99",
	"3 nodes, writes, 16 clients", "3 nodes, writes, 16 clients, p50", "3 nodes, writes, 16 clients, p99",
	"3 nodes, linearizable reads, 4 clients", "3 nodes, peak RSS of a node after the loads (the largest)",
	"3 nodes, leader SIGKILL to first write", "start one node to first write",
}

// runQuick runs the driver's quick mode with args and returns its table
// and its JSON report.
func runQuick(t *testing.T, args ...string) (string, report) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "results", "latest.json")
	var stdout, stderr bytes.Buffer
	args = append([]string{"-quick", "-graft", buildGraft(t), "-out", out, "-etcdload", "etcdload"}, args...)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench %v: %v\n%s", args, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !strings.Contains(stdout.String(), "results: "+out) {
		t.Errorf("the table does not say where the JSON is:\n%s", stdout.String())
	}
	return stdout.String(), rep
}

// The quick mode (make bench BENCHQUICK=1) runs every workload on the
// real binary once, prints one line per figure and writes every figure,
// measured, with the machine, to the JSON file.
func TestQuickRunMeasuresEveryFigure(t *testing.T) {
	table, rep := runQuick(t, "-etcd", "", "-mgmt", "")
	var names []string
	for _, f := range rep.Figures {
		names = append(names, f.Name)
		g := f.Systems["graft"]
		if len(f.Systems) != 1 || g == nil || len(g.Runs) != 1 || g.Median <= 0 || g.Min != g.Median || g.Max != g.Median {
			t.Errorf("figure %q: %+v, want one graft run with a positive value", f.Name, g)
		}
		if !strings.Contains(table, f.Name) {
			t.Errorf("figure %q is not in the table", f.Name)
		}
	}
	if !slices.Equal(names, quickFigures) {
		t.Errorf("figures:\n%q\nwant\n%q", names, quickFigures)
	}
	m := rep.Machine
	if m.Cores < 1 || m.MemoryMiB < 1 || m.GoVersion == "" || m.CPU == "" || m.GraftCommit == "" || rep.Rounds != 1 || !rep.Quick {
		t.Errorf("report header %+v", rep)
	}
	if !strings.Contains(table, "graft median (min-max)") || strings.Contains(table, "ratio") {
		t.Errorf("table header, with no peer:\n%s", table)
	}
}

// With ETCD_BIN the World figures are measured on etcd too, in the same
// run, each with its ratio.
func TestQuickRunWithEtcdGivesRatios(t *testing.T) {
	etcd := os.Getenv("ETCD_BIN")
	if etcd == "" {
		t.Skip("ETCD_BIN is not set: no etcd binary to compare with")
	}
	table, rep := runQuick(t, "-etcd", etcd, "-mgmt", "", "-only", "world")
	if len(rep.Figures) != 13 {
		t.Errorf("%d World figures, want 13", len(rep.Figures))
	}
	for _, f := range rep.Figures {
		if e := f.Systems["etcd"]; e == nil || e.Median <= 0 || f.Peer != "etcd" || f.Ratio <= 0 {
			t.Errorf("figure %q: etcd %+v, ratio %v vs %q", f.Name, e, f.Ratio, f.Peer)
		}
	}
	if !strings.Contains(table, "x vs etcd") {
		t.Errorf("no ratio in the table:\n%s", table)
	}
}

// With MGMT_BIN the engine workloads also run on mgmt, in turn with graft,
// on the same generated files and with the command line mgmt takes. A
// stand-in mgmt (a script) records its arguments and checks its file.
func TestQuickRunWithMgmtRunsTheSameGraphs(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "mgmt")
	script := "#!/bin/sh\necho \"$*\" >> " + record + "\n" +
		"for f; do :; done\n" + // the last argument: the graph file
		"grep -q '^graph: bench' \"$f\" || exit 3\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, rep := runQuick(t, "-etcd", "", "-mgmt", fake, "-only", "engine", "-rounds", "2")
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	// Four graphs, two rounds.
	if len(calls) != 8 {
		t.Fatalf("mgmt ran %d times, want 8: %q", len(calls), calls)
	}
	for _, c := range calls {
		if !strings.HasPrefix(c, "run --tmp-prefix --no-pgp --converged-timeout=0 yaml --yaml /") {
			t.Errorf("mgmt's command line: %q", c)
		}
	}
	for _, f := range rep.Figures {
		m := f.Systems["mgmt"]
		if strings.Contains(f.Name, "swap") || strings.Contains(f.Name, "drift") {
			if m != nil {
				t.Errorf("%q ran on mgmt", f.Name)
			}
			continue
		}
		if m == nil || len(m.Runs) != 2 || f.Peer != "mgmt" || f.Ratio <= 0 {
			t.Errorf("figure %q: mgmt %+v, ratio %v vs %q", f.Name, m, f.Ratio, f.Peer)
		}
	}
}
