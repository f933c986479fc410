package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/engine"
)

// smallGraph writes a graph of one file resource that graft creates and
// one exec resource that always fails, and is retried once.
func smallGraph(t *testing.T, dir string) string {
	t.Helper()
	return writeGraph(t, dir, "g.yaml", fmt.Sprintf(`graph: small
resources:
  file:
  - name: motd
    path: %s/motd
    content: "hello\n"
    state: exists
  exec:
  - name: broken
    cmd: "echo oops >&2; exit 3"
    shell: /bin/sh
    meta: {retry: 1}
`, dir))
}

// graft status on a running agent shows its resources: with --json under
// "resources", the ok file that was created and the failed exec with its
// error and no retry left; as text a summary line and a row each.
func TestStatusShowsHostResources(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	a := startTestAgent(t, data, "h1", "--log-format", "json", "--converged-timeout=0", "yaml", smallGraph(t, dir))
	a.waitLog(30*time.Second, `"summary":"converged"`)

	// A late event (the file's own creation, seen by its watch) may run a
	// check again: the status is read until it shows the host converged.
	rs := statusResources(t, data, func(rs api.Resources) bool { return rs.Converged })
	if rs.Host != "h1" || rs.Graph != "small" || !rs.Converged ||
		rs.Counts != (api.ResourceCounts{Total: 2, OK: 1, Failed: 1, Changed: 1}) || len(rs.Resources) != 2 {
		t.Fatalf("resources: %+v", rs)
	}
	exec, file := rs.Resources[0], rs.Resources[1]
	if exec.Kind != "exec" || exec.Name != "broken" || exec.State != "failed" || exec.RetriesLeft != 0 ||
		!strings.Contains(exec.Error, "exit status 3") || exec.LastStart.IsZero() || exec.Waiting != "" {
		t.Errorf("the failing exec: %+v", exec)
	}
	if file.Kind != "file" || file.Name != "motd" || file.State != "ok" || file.Error != "" ||
		file.Changes != 1 || file.RetriesLeft != 0 || file.LastStart.IsZero() ||
		file.LastStart.After(time.Now()) || file.LastDurationSeconds < 0 {
		t.Errorf("the file: %+v", file)
	}

	var stdout string
	waitUntil(t, "status showing the host converged", func() (bool, error) {
		code, out, stderr := graft(t, "status", "--data-dir", data)
		if code != 0 {
			return false, fmt.Errorf("status: exit %d: %s", code, stderr)
		}
		stdout = out
		return strings.Contains(out, "), 1 changed, converged\n"), nil
	})
	for _, want := range []string{
		"resources:     2 (1 ok, 0 dirty, 0 running, 0 waiting, 1 failed), 1 changed, converged\n",
		"KIND  NAME    STATE   LAST RUN",
		"exec  broken  failed  ",
		"file  motd    ok      ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "exit status 3") {
		t.Errorf("status does not show the exec's error:\n%s", stdout)
	}
	a.stop()
}

// statusResources runs `graft status --json` until its resources satisfy
// done, and returns them.
func statusResources(t *testing.T, data string, done func(api.Resources) bool) api.Resources {
	t.Helper()
	var rs api.Resources
	waitUntil(t, "the resources wanted", func() (bool, error) {
		code, stdout, stderr := graft(t, "status", "--json", "--data-dir", data)
		var out struct {
			Resources *api.Resources `json:"resources"`
		}
		if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 0 || out.Resources == nil {
			return false, fmt.Errorf("status --json: exit %d, %v: %s%s", code, err, stdout, stderr)
		}
		rs = *out.Resources
		return done(rs), nil
	})
	return rs
}

// summaryRecord is the run summary's log line.
type summaryRecord struct {
	Msg       string  `json:"msg"`
	Summary   string  `json:"summary"`
	Seconds   float64 `json:"seconds"`
	Resources int     `json:"resources"`
	Changed   int     `json:"changed"`
	Failed    int     `json:"failed"`
}

func summaries(stderr string) []summaryRecord {
	var out []summaryRecord
	for _, line := range strings.Split(stderr, "\n") {
		var r summaryRecord
		if json.Unmarshal([]byte(line), &r) == nil && r.Summary != "" {
			out = append(out, r)
		}
	}
	return out
}

// After the first convergence the agent logs one summary line, its numbers
// in the text and as attributes; --converged-exit on that convergence
// does not repeat it at exit.
func TestRunSummaryAfterFirstConvergence(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := graft(t, "run", "--tmp-prefix", "--log-format", "json", "--converged-timeout=0",
		"--converged-exit", "yaml", smallGraph(t, dir))
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the exec failed); stderr:\n%s", code, stderr)
	}
	got := summaries(stderr)
	if len(got) != 1 {
		t.Fatalf("got %d summary lines, want 1: %+v", len(got), got)
	}
	s := got[0]
	want := fmt.Sprintf("converged in %.1f s: 2 resources, 1 changed, 1 failed", s.Seconds)
	if s.Msg != want || s.Summary != "converged" || s.Resources != 2 || s.Changed != 1 || s.Failed != 1 || s.Seconds <= 0 {
		t.Errorf("summary %+v, want %q", s, want)
	}
}

// With --converged-exit, an agent stopped before it converged says so at
// exit, and one that converged again after the first time sums up the
// whole run.
func TestRunSummaryAtExit(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	s := newRunSummary(&engineRef{}, true, true, log)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.begin(start)
	s.finish(start.Add(1500 * time.Millisecond))
	if got := summaries(buf.String()); len(got) != 1 || got[0].Msg != "stopped in 1.5 s: 0 resources, 0 would change, 0 failed" {
		t.Errorf("stopped before converging: %+v", got)
	}

	buf.Reset()
	s = newRunSummary(&engineRef{}, false, true, log)
	s.begin(start)
	s.changed(engineStatus(true), start.Add(time.Second))
	s.changed(engineStatus(false), start.Add(2*time.Second))
	s.changed(engineStatus(true), start.Add(3*time.Second))
	s.finish(start.Add(4 * time.Second))
	got := summaries(buf.String())
	if len(got) != 2 || got[0].Msg != "converged in 1.0 s: 0 resources, 0 changed, 0 failed" ||
		got[1].Msg != "finished in 4.0 s: 0 resources, 0 changed, 0 failed" {
		t.Errorf("converged twice: %+v", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func engineStatus(converged bool) engine.Status { return engine.Status{Converged: converged} }

// The status table shows what a waiting resource waits for, the retries
// left of a failing one, and only the first line of an error, cut short;
// a row without an error ends with its duration, no spaces after it.
func TestPrintResourcesTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 70)
	var b bytes.Buffer
	err := printResources(&b, api.Resources{Counts: api.ResourceCounts{Total: 4, OK: 1, Waiting: 2, Failed: 1},
		Resources: []api.Resource{
			{Kind: "exec", Name: "a", State: "failed", Waiting: "retry", RetriesLeft: 2, Error: "boom\nmore",
				LastStart: now.Add(-3 * time.Second), LastDurationSeconds: 1.2345},
			{Kind: "exec", Name: "b", State: "waiting", Waiting: "semaphores"},
			{Kind: "file", Name: "c", State: "failed", Error: long, LastStart: now.Add(-time.Minute), LastDurationSeconds: 0.0004},
			{Kind: "file", Name: "d", State: "ok", LastStart: now.Add(-90 * time.Second), LastDurationSeconds: 0.02},
		}}, now)
	want := "resources:     4 (1 ok, 0 dirty, 0 running, 2 waiting, 1 failed), 0 changed, not converged\n" +
		"KIND  NAME  STATE                      LAST RUN   DURATION  ERROR\n" +
		"exec  a     failed (retrying, 2 left)  3s ago     1.23s     boom …\n" +
		"exec  b     waiting (semaphores)       -          -\n" +
		"file  c     failed                     1m0s ago   400µs     " + strings.Repeat("x", 59) + "…\n" +
		"file  d     ok                         1m30s ago  20ms\n"
	if err != nil || b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
