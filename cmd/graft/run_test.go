package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/cluster/clusterkey"
)

// logRecord is one line of --log-format json output.
type logRecord struct {
	Msg      string `json:"msg"`
	Resource string `json:"resource"`
	Level    string `json:"level"`
}

func parseLog(t *testing.T, stderr string) []logRecord {
	t.Helper()
	var recs []logRecord
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// applied lists, in order, the resources the log says were applied.
func applied(recs []logRecord) []string {
	var out []string
	for _, r := range recs {
		if r.Msg == "resource applied" {
			out = append(out, r.Resource)
		}
	}
	return out
}

// A chain file1 -> file2 -> file3 plus an absent file converges, in edge
// order, and --converged-exit exits 0.
func TestRunChainConvergesAndExits(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`graph: chain
resources:
  file:
  - name: file3
    path: %[1]s/out/f3
    content: "three\n"
    state: exists
  - name: file1
    path: %[1]s/out/f1
    content: "one\n"
    state: exists
  - name: file2
    path: %[1]s/out/f2
    content: "two\n"
    state: exists
  - name: stale
    path: %[1]s/stale
    state: absent
edges:
- from: {kind: file, name: file1}
  to: {kind: file, name: file2}
- from: {kind: file, name: file2}
  to: {kind: file, name: file3}
`, dir)
	g := writeGraph(t, dir, "chain.yaml", src)
	code, _, stderr := graft(t, "run", "--data-dir", filepath.Join(dir, "data"), "--log-format", "json",
		"--converged-timeout=1", "--converged-exit", "yaml", g)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	for name, want := range map[string]string{"f1": "one\n", "f2": "two\n", "f3": "three\n"} {
		got, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Lstat(stale); err == nil {
		t.Error("the absent file still exists")
	}
	order := applied(parseLog(t, stderr))
	chain := slices.DeleteFunc(slices.Clone(order), func(s string) bool { return s == "file[stale]" })
	if !slices.Equal(chain, []string{"file[file1]", "file[file2]", "file[file3]"}) {
		t.Errorf("applied in order %v, want file1, file2, file3", order)
	}
}

// --converged-exit exits 1 and names the resources that failed.
func TestRunConvergedExitReportsFailures(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", `resources:
  exec:
  - name: broken
    cmd: "false"
  - name: fine
    cmd: "true"
`)
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code != 1 || !strings.Contains(stderr, "converged with 1 failed resources: exec[broken]") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// --noop changes nothing.
func TestRunNoopChangesNothing(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: f
    path: %s/f
    content: x
`, dir))
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--noop", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code != exitWouldChange || !strings.Contains(stderr, "noop: 1 resources would change: file[f]") {
		t.Fatalf("exit %d, want 2 naming file[f]: %s", code, stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, "f")); err == nil {
		t.Error("--noop created a file")
	}
	if !strings.Contains(stderr, "would change") {
		t.Errorf("noop run did not report what it would change:\n%s", stderr)
	}
}

// Issue 9, item 8: `run --noop --converged-exit` exits 2 when something
// would change (above) and 0 when everything is in state, as Puppet's
// --detailed-exitcodes users expect.
func TestRunNoopExitsZeroWhenNothingWouldChange(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: f
    path: %s/f
    content: x
`, dir))
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--noop", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code != 0 {
		t.Fatalf("exit %d, want 0: %s", code, stderr)
	}
}

func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", "resources: {}\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--tmp-prefix", "--converged-exit", "yaml", g}, exitUsage, "--converged-exit needs --converged-timeout"},
		{[]string{"run", "--tmp-prefix", "yaml"}, exitUsage, "want exactly one graph file"},
		{[]string{"run", "--tmp-prefix", g}, exitUsage, "graft run yaml " + g},
		{[]string{"run", "--tmp-prefix", "--log-level", "loud", "yaml", g}, exitUsage, "--log-level"},
		{[]string{"run", "--tmp-prefix", "--converged-timeout=-5", "yaml", g}, exitUsage, "--converged-timeout"},
		{[]string{"run", "--tmp-prefix", "--sema=-1", "yaml", g}, exitUsage, "--sema"},
		{[]string{"run", "--tmp-prefix", "yaml", filepath.Join(dir, "missing.yaml")}, 1, "missing.yaml"},
	} {
		code, _, stderr := graft(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

// Two agents never share a data dir.
func TestDataDirIsLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data")
	d, err := openDataDir(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openDataDir(p, false); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second open: got %v, want an in-use error", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = openDataDir(p, false)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	d.Close()
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode: %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	// A data dir someone made open to others is made private.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	od, err := openDataDir(open, false)
	if err != nil {
		t.Fatal(err)
	}
	od.Close()
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Errorf("an existing data dir was left at mode %v", fi.Mode().Perm())
	}

	tmp, err := openDataDir("", true)
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	if _, err := os.Stat(tmp.path); err == nil {
		t.Error("temporary data dir not removed")
	}
}

// The cluster key given in GRAFT_TOKEN does not reach the commands exec
// resources run.
func TestTokenNotInResourceEnvironment(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  exec:
  - name: dump
    cmd: env > %s
    shell: /bin/sh
`, out))
	t.Setenv("GRAFT_TOKEN", tok.Secret())
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	env, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env), tok.Secret()) || strings.Contains(string(env), "GRAFT_TOKEN") {
		t.Error("an exec resource's command saw the cluster key in its environment")
	}
}
