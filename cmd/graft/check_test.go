package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeGraph(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// graft check exits non-zero on every kind of bad graph, naming the file
// and the line.
func TestCheckReportsFileAndLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, src, want string }{
		{"unknown-kind", "resources:\n  flie:\n  - name: a\n", "unknown-kind.yaml:2:3: resources: unknown resource kind \"flie\""},
		{"unknown-key", "resources:\n  noop:\n  - name: a\n    colour: red\n", "unknown-key.yaml:4:5: noop \"a\": unknown key \"colour\""},
		{"bad-edge", "resources:\n  noop:\n  - name: a\nedges:\n- from: {kind: noop, name: a}\n  to: {kind: noop, name: b}\n", "bad-edge.yaml:6:7: edges[0]: to: no resource noop \"b\""},
		{"cycle", "resources:\n  noop:\n  - name: a\n  - name: b\nedges:\n- from: {kind: noop, name: a}\n  to: {kind: noop, name: b}\n- from: {kind: noop, name: b}\n  to: {kind: noop, name: a}\n", "cycle.yaml:6: edges: cycle: noop[a] -> noop[b] -> noop[a]"},
		{"duplicate", "resources:\n  noop:\n  - name: a\n  - name: a\n", "duplicate.yaml:4:11: noop \"a\": duplicate resource (first defined at line 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeGraph(t, dir, tc.name+".yaml", tc.src)
			code, _, stderr := graft(t, "check", p)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr, filepath.Join(dir, tc.want)) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want)
			}
		})
	}
}

func TestCheckGoodGraphsAndUsage(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	code, stdout, stderr := graft(t, append([]string{"check"}, files...)...)
	if code != 0 || strings.Count(stdout, ": ok") != len(files) {
		t.Errorf("examples: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, _ := graft(t, "check"); code != exitUsage {
		t.Errorf("check with no file: exit %d, want %d", code, exitUsage)
	}
	if code, _, stderr := graft(t, "check", "/nonexistent/graph.yaml"); code != 1 || !strings.Contains(stderr, "/nonexistent/graph.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := graft(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "graft ") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}
