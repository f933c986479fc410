package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileID is what says a file was left alone: the same inode, unmodified.
type fileID struct {
	ino   uint64
	mtime time.Time
}

func statID(t *testing.T, p string) fileID {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fileID{ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime()}
}

// readString returns a file's contents, or "" if it cannot be read.
func readString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// waitContent polls until p holds want.
func waitContent(t *testing.T, p, want string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for readString(p) != want {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s holds %q, want %q", p, readString(p), want)
		}
	}
}

// hasApplied reports whether the JSON log says id was applied.
func hasApplied(t *testing.T, log string, ids ...string) bool {
	got := applied(parseLog(t, log))
	for _, id := range ids {
		if !slices.Contains(got, id) {
			return false
		}
	}
	return true
}

// lineOf returns the 1-based number of the first line of src containing s.
func lineOf(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the graph", s)
	return 0
}

// Editing the graph file while graft runs swaps the new graph in: a new
// resource appears, resources that did not change are left alone (a file
// keeps its inode and mtime, a command does not run again), an invalid edit
// is logged with its file and line and the running graph keeps repairing
// drift, and a later valid edit, saved the way editors do, goes through.
func TestEditedGraphSwapsLive(t *testing.T) {
	dir := t.TempDir()
	fa, fb, fc, runs := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c"), filepath.Join(dir, "runs")
	base := fmt.Sprintf(`graph: live
resources:
  exec:
  - name: x
    cmd: echo run >> %s
    shell: /bin/sh
  file:
  - name: a
    path: %s
    content: "a\n"
`, runs, fa)
	// fileAfter is a file that runs only once a and x are settled, so its
	// appearing means the swap is over.
	fileAfter := func(name, path string) (res, edges string) {
		return fmt.Sprintf("  - name: %s\n    path: %s\n    content: \"%[1]s\\n\"\n", name, path),
			fmt.Sprintf("- {from: {kind: file, name: a}, to: {kind: file, name: %[1]s}}\n"+
				"- {from: {kind: exec, name: x}, to: {kind: file, name: %[1]s}}\n", name)
	}
	g := writeGraph(t, dir, "g.yaml", base)
	ag := startAgent(t, "run", "--tmp-prefix", "--log-format", "json", "yaml", g)
	ag.waitFor(20*time.Second, "a and x applied", func(s string) bool { return hasApplied(t, s, "file[a]", "exec[x]") })
	before := statID(t, fa)

	// A valid edit, written in place.
	bRes, bEdges := fileAfter("b", fb)
	withB := base + bRes + "edges:\n" + bEdges
	writeGraph(t, dir, "g.yaml", withB)
	waitFile(t, fb)
	ag.waitFor(10*time.Second, "b applied", func(s string) bool { return hasApplied(t, s, "file[b]") })
	if after := statID(t, fa); after != before {
		t.Errorf("a was touched by the swap: %+v, then %+v", before, after)
	}
	if got := readString(runs); got != "run\n" {
		t.Errorf("x ran again on the swap: runs holds %q", got)
	}

	// An invalid edit: logged at Error level with file:line, ignored.
	bad := strings.Replace(withB, "  - name: b\n", "  - name: b\n    colour: red\n", 1)
	at := fmt.Sprintf("%s:%d:", g, lineOf(t, bad, "colour"))
	writeGraph(t, dir, "g.yaml", bad)
	ag.waitFor(10*time.Second, "the invalid edit logged", func(s string) bool {
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, at) && strings.Contains(l, "colour") {
				return true
			}
		}
		return false
	})
	for _, p := range []string{fa, fb} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	waitContent(t, fa, "a\n")
	waitContent(t, fb, "b\n")
	ag.waitFor(10*time.Second, "b repaired", func(s string) bool {
		return strings.Count(strings.Join(applied(parseLog(t, s)), " "), "file[b]") >= 2
	})
	before = statID(t, fa)

	// A valid edit again, saved by renaming a new file over the old one.
	cRes, cEdges := fileAfter("c", fc)
	withC := base + bRes + cRes + "edges:\n" + bEdges + cEdges
	tmp := writeGraph(t, dir, ".g.yaml.swp", withC)
	if err := os.Rename(tmp, g); err != nil {
		t.Fatal(err)
	}
	waitFile(t, fc)
	ag.waitFor(10*time.Second, "c applied", func(s string) bool { return hasApplied(t, s, "file[c]") })
	if after := statID(t, fa); after != before {
		t.Errorf("a was touched by the second swap: %+v, then %+v", before, after)
	}
	if got := readString(runs); got != "run\n" {
		t.Errorf("x ran again: runs holds %q", got)
	}
	ag.signal(syscall.SIGTERM)
	if code := ag.exitCode(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// A refresh that a notify edge delivered survives the agent being killed:
// after a restart with the same data dir the refreshed resource runs,
// although the resource that sent the refresh is already in state.
func TestRefreshSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	f, marker := filepath.Join(dir, "f"), filepath.Join(dir, "marker")
	// x blocks the first time it runs, so p cannot run before the kill; the
	// marker holds the shell's pid, which leads its process group.
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: f
    path: %[1]s
    content: "f\n"
  exec:
  - name: x
    cmd: 'test -f %[2]s || { echo $$ > %[2]s.tmp && mv %[2]s.tmp %[2]s && sleep 300; }'
    shell: /bin/sh
  print:
  - name: p
    msg: RELOADED
    refresh_only: true
edges:
- {from: {kind: file, name: f}, to: {kind: print, name: p}, notify: true}
- {from: {kind: exec, name: x}, to: {kind: print, name: p}}
`, f, marker))
	args := []string{"run", "--data-dir", data, "--log-format", "json", "yaml", g}

	first := startAgent(t, args...)
	waitFile(t, marker)
	var pgid int
	if _, err := fmt.Sscan(readString(marker), &pgid); err != nil || pgid <= 1 {
		t.Fatalf("marker holds %q: %v", readString(marker), err)
	}
	// The killed agent cannot stop its command; the test does.
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	waitFile(t, f)
	first.waitFor(10*time.Second, "f applied", func(s string) bool { return hasApplied(t, s, "file[f]") })
	first.signal(syscall.SIGKILL)
	first.exitCode(10 * time.Second)
	if strings.Contains(first.output(), "RELOADED") {
		t.Fatal("p ran before the kill; the test proves nothing")
	}
	if fi, err := os.Stat(filepath.Join(data, "engine")); err != nil || !fi.IsDir() {
		t.Errorf("no engine state directory under the data dir: %v", err)
	}

	second := startAgent(t, args...)
	second.waitLog(20*time.Second, "RELOADED")
	if hasApplied(t, second.output(), "file[f]") {
		t.Error("f was applied again after the restart; the refresh should come from the saved state")
	}
	second.signal(syscall.SIGTERM)
	if code := second.exitCode(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// meta noop stops one resource from changing anything; the others apply.
func TestMetaNoopStopsChanges(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: kept-out
    path: %[1]s/noop
    content: x
    meta: {noop: true}
  - name: made
    path: %[1]s/made
    content: x
`, dir))
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit", "yaml", g)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, "noop")); err == nil {
		t.Error("a file with meta noop was created")
	}
	if got := readString(filepath.Join(dir, "made")); got != "x" {
		t.Errorf("the file without meta noop holds %q, want %q", got, "x")
	}
	if !strings.Contains(stderr, "file[kept-out]") || !strings.Contains(stderr, "would change") {
		t.Errorf("the noop resource did not report what it would change:\n%s", stderr)
	}
}

// --converged-status-file holds "false" from the start until the host
// converges, then follows every transition.
func TestConvergedStatusFile(t *testing.T) {
	dir := t.TempDir()
	status, gate, f := filepath.Join(dir, "status"), filepath.Join(dir, "gate"), filepath.Join(dir, "f")
	// wait runs on start and on every refresh from f, and blocks until the
	// test opens the gate, so the agent cannot converge before that.
	g := writeGraph(t, dir, "g.yaml", fmt.Sprintf(`resources:
  file:
  - name: f
    path: %[1]s
    content: "f\n"
  exec:
  - name: wait
    cmd: 'while [ ! -e %[2]s ]; do sleep 0.02; done; rm %[2]s'
    shell: /bin/sh
edges:
- {from: {kind: file, name: f}, to: {kind: exec, name: wait}, notify: true}
`, f, gate))
	a := startAgent(t, "run", "--tmp-prefix", "--converged-timeout=0", "--converged-status-file", status, "yaml", g)
	waitFile(t, status)
	if got := readString(status); got != "false\n" {
		t.Fatalf("status at start: %q, want %q", got, "false\n")
	}
	open := func() {
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open()
	waitContent(t, status, "true\n")

	// Drift: f is repaired, which refreshes wait, which blocks again.
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	waitContent(t, status, "false\n")
	open()
	waitContent(t, status, "true\n")

	a.signal(syscall.SIGTERM)
	if code := a.exitCode(10 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if got := readString(status); got != "true\n" {
		t.Errorf("status after exit: %q, want the last state %q", got, "true\n")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".status.*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	code, _, stderr := graft(t, "run", "--tmp-prefix", "--converged-status-file", filepath.Join(dir, "missing", "status"), "yaml", g)
	if code != 1 || !strings.Contains(stderr, "converged status file") {
		t.Errorf("unwritable status file: exit %d, stderr %q; want exit 1 naming the status file", code, stderr)
	}
}

// --sema 1 lets one resource apply at a time; without it independent
// resources overlap. Each command records when it started and ended.
func TestSemaLimitsConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		overlap bool
	}{
		{"sema1", []string{"--sema", "1"}, false},
		{"unlimited", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var src strings.Builder
			src.WriteString("resources:\n  exec:\n")
			for _, n := range []string{"one", "two"} {
				fmt.Fprintf(&src, "  - name: %[1]s\n    cmd: 'date +%%s%%N > %[2]s/%[1]s.start; sleep 1; date +%%s%%N > %[2]s/%[1]s.end'\n    shell: /bin/sh\n", n, dir)
			}
			g := writeGraph(t, dir, "g.yaml", src.String())
			args := append(append([]string{"run", "--tmp-prefix", "--converged-timeout=0", "--converged-exit"}, tc.args...), "yaml", g)
			if code, _, stderr := graft(t, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			stamp := func(name string) int64 {
				raw := strings.TrimSpace(readString(filepath.Join(dir, name)))
				n, err := strconv.ParseInt(raw, 10, 64)
				if err != nil {
					t.Fatalf("%s holds %q: %v", name, raw, err)
				}
				return n
			}
			s1, e1, s2, e2 := stamp("one.start"), stamp("one.end"), stamp("two.start"), stamp("two.end")
			if overlap := s1 < e2 && s2 < e1; overlap != tc.overlap {
				t.Errorf("one ran [%d, %d], two ran [%d, %d]: overlap %v, want %v", s1, e1, s2, e2, overlap, tc.overlap)
			}
		})
	}
}
