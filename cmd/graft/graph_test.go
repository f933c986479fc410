package main

import (
	"bytes"
	"fmt"
	"image/png"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/graphviz"
)

// unless returns err when ok is false, nil otherwise: waitUntil's probe.
func unless(ok bool, err error) (bool, error) {
	if ok {
		return true, nil
	}
	return false, err
}

// readDOT returns the file's text, empty if it is not there yet.
func readDOT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// run --graphviz writes the file at start and rewrites it after a graph
// swap; `graft graph` prints the same drawing from the API, and --svg
// runs dot (or says that dot is missing).
func TestGraphvizFileFollowsSwapsAndGraphCommandDrawsTheSame(t *testing.T) {
	dir := t.TempDir()
	data, dotFile := filepath.Join(dir, "data"), filepath.Join(dir, "out", "graph.dot")
	if err := os.Mkdir(filepath.Dir(dotFile), 0o755); err != nil {
		t.Fatal(err)
	}
	g := writeGraph(t, dir, "g.yaml", "graph: one\nresources:\n  noop:\n  - name: first\n")
	a := startTestAgent(t, data, "h1", "--converged-timeout=0", "--graphviz", dotFile, "yaml", g)
	waitUntil(t, "graph one in the DOT file", func() (bool, error) {
		s := readDOT(t, dotFile)
		return unless(strings.Contains(s, `label="graph one on h1: converged";`) &&
			strings.Contains(s, `"noop[first]" [label="noop[first]", fillcolor="#b7e4c7", tooltip="ok"];`), fmt.Errorf("%s", s))
	})

	writeGraph(t, dir, "g.yaml", `graph: two
resources:
  noop:
  - name: first
  - name: second
  print:
  - name: after
    msg: hi
edges:
- from: {kind: noop, name: first}
  to: {kind: print, name: after}
  notify: true
- from: {kind: noop, name: second}
  to: {kind: print, name: after}
`)
	waitUntil(t, "graph two in the DOT file", func() (bool, error) {
		s := readDOT(t, dotFile)
		return unless(strings.Contains(s, `label="graph two on h1: converged";`) &&
			strings.Contains(s, `"noop[first]" [label="autogroup of 2:\nnoop[first]\nnoop[second]", fillcolor="#b7e4c7", tooltip="ok"];`) &&
			strings.Contains(s, `"noop[first]" -> "print[after]" [style=dashed, color="#d95f02", label="notify"];`), fmt.Errorf("%s", s))
	})

	var printed string
	waitUntil(t, "graft graph printing what the file holds", func() (bool, error) {
		code, stdout, stderr := graft(t, "graph", "--data-dir", data)
		if code != 0 {
			return false, fmt.Errorf("graph: exit %d: %s", code, stderr)
		}
		printed = stdout
		return unless(stdout == readDOT(t, dotFile), fmt.Errorf("graph printed\n%s\nthe file holds\n%s", stdout, readDOT(t, dotFile)))
	})
	if code, stdout, _ := graft(t, "graph", "--dot", "--data-dir", data); code != 0 || stdout != printed {
		t.Errorf("graph --dot: exit %d, printed\n%s\nwant\n%s", code, stdout, printed)
	}

	svg := filepath.Join(dir, "g.svg")
	if _, err := graphviz.LookDot(); err == nil {
		code, stdout, stderr := graft(t, "graph", "--data-dir", data, "--svg", svg)
		b, _ := os.ReadFile(svg)
		if code != 0 || stdout != "" || !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("noop[second]")) {
			t.Errorf("graph --svg: exit %d, stdout %q, stderr %q, file %.200q", code, stdout, stderr, b)
		}
	}
	t.Setenv("PATH", t.TempDir()) // no dot
	code, _, stderr := graft(t, "graph", "--data-dir", data, "--png", filepath.Join(dir, "g.png"))
	if code != 1 || !strings.Contains(stderr, "--png") || !strings.Contains(stderr, "the dot program (Graphviz) is not installed") {
		t.Errorf("graph --png without dot: exit %d, stderr %q", code, stderr)
	}
	a.stop()
	if s := readDOT(t, dotFile); !strings.Contains(s, "graph two on h1") {
		t.Errorf("after the agent stopped, the file holds\n%s", s)
	}
}

// Bad --graphviz and graph flags are usage errors naming the flag; a file
// that cannot be written stops the run before the agent starts.
func TestGraphvizFlagErrors(t *testing.T) {
	dir := t.TempDir()
	g := writeGraph(t, dir, "g.yaml", "graph: one\nresources:\n  noop:\n  - name: first\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--tmp-prefix", "--graphviz", "", "yaml", g}, exitUsage, "--graphviz is empty"},
		{[]string{"run", "--tmp-prefix", "--graphviz", filepath.Join(dir, "no", "such", "g.dot"), "yaml", g}, 1,
			"--graphviz " + filepath.Join(dir, "no", "such", "g.dot")},
		{[]string{"graph", "--svg", ""}, exitUsage, "--svg is empty"},
		{[]string{"graph", "extra"}, exitUsage, `unexpected argument "extra"`},
	} {
		code, _, stderr := graft(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d naming %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

// The --graphviz file is rewritten at most once a second however many
// events arrive, the events never block, and a change no event announced
// is written within graphvizPoll.
func TestGraphvizFileRewritesAtMostOncePerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "g.dot")
		var renders, version atomic.Int64
		f := newGraphvizFile(path, "h", func() api.Graph {
			renders.Add(1)
			return api.Graph{Graph: fmt.Sprint("v", version.Load())}
		}, slog.New(slog.DiscardHandler))
		if err := f.start(); err != nil {
			t.Fatal(err)
		}
		stop := goRun(f.run, nil)
		defer stop()
		begin := time.Now()
		for time.Since(begin) < 10*time.Second {
			version.Add(1)
			for range 100 {
				f.CheckApplyDone(engineApplyEvent())
			}
			time.Sleep(100 * time.Millisecond)
		}
		// start's write, and at most one a second since.
		if n := renders.Load(); n < 5 || n > 12 {
			t.Errorf("%d renders in 10s of constant events, want one a second", n)
		}
		time.Sleep(2 * graphvizInterval) // the last event's write is done
		version.Add(1)
		want := fmt.Sprint("graph v", version.Load(), " on h")
		time.Sleep(graphvizPoll + graphvizInterval)
		if s := readDOT(t, path); !strings.Contains(s, want) {
			t.Errorf("a change without an event not written within %v:\n%s", graphvizPoll+graphvizInterval, s)
		}
	})
}

// docs/graph.dot is what `graft run --graphviz` writes for
// examples/graph.yaml once it converged, and docs/graph.png is drawn from
// it. After changing the drawing, regenerate both from the repository's
// top directory:
//
//	go run ./cmd/graft run --tmp-prefix --hostname example --converged-timeout 0 --converged-exit \
//	  --cluster-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 --graphviz docs/graph.dot yaml examples/graph.yaml
//	dot -Tpng -o docs/graph.png docs/graph.dot
func TestDocsGraphMatchesExample(t *testing.T) {
	out := filepath.Join(t.TempDir(), "graph.dot")
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--hostname", "example", "--converged-timeout", "0",
		"--converged-exit", "--graphviz", out, "yaml", "../../examples/graph.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want, err := os.ReadFile("../../docs/graph.dot")
	if err != nil {
		t.Fatal(err)
	}
	if got := readDOT(t, out); got != string(want) {
		t.Errorf("docs/graph.dot is out of date (see this test's comment to regenerate it); got\n%s\nwant\n%s", got, want)
	}
	f, err := os.Open("../../docs/graph.png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.DecodeConfig(f); err != nil {
		t.Errorf("docs/graph.png: %v", err)
	}
	if bin, err := exec.LookPath("dot"); err == nil {
		if b, err := exec.Command(bin, "-Tsvg", "../../docs/graph.dot").CombinedOutput(); err != nil {
			t.Errorf("dot rejects docs/graph.dot: %v: %s", err, b)
		}
	}
}

func engineApplyEvent() engine.ApplyEvent { return engine.ApplyEvent{Duration: time.Millisecond} }
