package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// slowGraph writes a graph of two execs: one done at once, one that runs
// until the file gate exists. It returns the graph's path and the gate's.
func slowGraph(t *testing.T) (graph, gate string) {
	t.Helper()
	dir := t.TempDir()
	gate = filepath.Join(dir, "gate")
	graph = writeGraph(t, dir, "g.yaml", fmt.Sprintf(`graph: slow
resources:
  exec:
  - name: quick
    cmd: 'true'
    shell: /bin/sh
  - name: slow
    cmd: 'while [ ! -e %s ]; do sleep 0.05; done'
    shell: /bin/sh
`, gate))
	return graph, gate
}

// openGate creates the gate file the slow exec waits for.
func openGate(t *testing.T, gate string) {
	t.Helper()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// textTime is the time= attribute of a line of the text log.
func textTime(t *testing.T, line string) time.Time {
	t.Helper()
	m := regexp.MustCompile(`^time=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no time in log line %q", line)
	}
	ts, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return ts
}

// progressLine matches a progress line of the slow graph in a text log.
var progressLine = regexp.MustCompile(`msg="converging (\d)/2 resources" done=(\d) total=2 running=[12] `)

// A first convergence that takes long shows in a text log as plain lines,
// "converging 1/2 resources": none in its first progressLogEvery, then at
// most one every progressLogEvery, none once it is over (the run summary
// closes it).
func TestTextLogShowsPeriodicProgressWhileFirstConvergenceIsSlow(t *testing.T) {
	graph, gate := slowGraph(t)
	a := startAgent(t, "run", "--tmp-prefix", "--hostname", "h1", "--converged-timeout", "0", "--converged-exit",
		"yaml", graph)
	a.waitFor(4*progressLogEvery+20*time.Second, "two progress lines", func(s string) bool {
		return strings.Count(s, `msg="converging `) >= 2
	})
	openGate(t, gate)
	if code := a.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	var started time.Time
	var progress []time.Time
	summary := false
	sc := bufio.NewScanner(strings.NewReader(a.output()))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, `msg=starting`):
			started = textTime(t, line)
		case strings.Contains(line, `msg="converging `):
			if summary {
				t.Errorf("progress after the run summary: %q", line)
			}
			// The quick exec is done by now but on a machine loaded beyond
			// belief; the slow one runs until the gate opens.
			if m := progressLine.FindStringSubmatch(line); m == nil || m[1] != m[2] || m[1] > "1" {
				t.Errorf("progress line %q, want converging 0/2 or 1/2 resources, with done, total 2 and running", line)
			}
			progress = append(progress, textTime(t, line))
		case strings.Contains(line, `msg="converged in `):
			summary = true
		}
	}
	if started.IsZero() || !summary || len(progress) < 2 {
		t.Fatalf("started at %v, summary %v, %d progress lines; want a start, a summary and 2 or more lines",
			started, summary, len(progress))
	}
	// Timers fire late on a loaded machine, never early: these bounds hold
	// under any load. The log's times are in milliseconds or finer.
	slack := 10 * time.Millisecond
	if d := progress[0].Sub(started); d < progressLogEvery-slack {
		t.Errorf("the first progress line came %v after the start, want at least %v", d, progressLogEvery)
	}
	for i := 1; i < len(progress); i++ {
		if d := progress[i].Sub(progress[i-1]); d < progressLogEvery-slack {
			t.Errorf("progress lines %d and %d came %v apart, want at least %v", i-1, i, d, progressLogEvery)
		}
	}
}

// With JSON logs the progress is a record of its own: a constant message,
// "converging", with the counts as attributes.
func TestJSONLogShowsProgressRecordsWithCounts(t *testing.T) {
	graph, gate := slowGraph(t)
	a := startAgent(t, "run", "--tmp-prefix", "--hostname", "h1", "--log-format", "json",
		"--converged-timeout", "0", "--converged-exit", "yaml", graph)
	a.waitLog(2*progressLogEvery+20*time.Second, `"msg":"converging"`)
	openGate(t, gate)
	if code := a.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	records := 0
	sc := bufio.NewScanner(strings.NewReader(a.output()))
	for sc.Scan() {
		var rec struct {
			Msg                          string
			Done, Total, Running, Failed *int
			Seconds                      *float64
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("a line of the JSON log is not JSON: %q: %v", sc.Text(), err)
		}
		if !strings.HasPrefix(rec.Msg, "converging") {
			continue
		}
		records++
		if rec.Msg != "converging" || rec.Done == nil || *rec.Done > 1 || rec.Total == nil || *rec.Total != 2 ||
			rec.Running == nil || *rec.Running < 1 || rec.Failed == nil || *rec.Failed != 0 ||
			rec.Seconds == nil || *rec.Seconds < progressLogEvery.Seconds()-0.01 {
			t.Errorf("progress record %s, want msg converging, done 0 or 1, total 2, running, failed 0, seconds >= %v",
				sc.Text(), progressLogEvery.Seconds())
		}
	}
	if records == 0 {
		t.Error("no progress record in the JSON log")
	}
}

// On a terminal (text logs) the progress is one line refreshed in place
// ("\r...\x1b[K", never a newline), that log lines are written above, and
// that is erased once the first convergence is over.
func TestTerminalShowsProgressLineRefreshedInPlace(t *testing.T) {
	term := openTerminal(t)
	graph, gate := slowGraph(t)
	cmd := exec.Command(os.Args[0], testClusterAddr([]string{"run", "--tmp-prefix", "--hostname", "h1",
		"--converged-timeout", "0", "--converged-exit", "yaml", graph})...)
	cmd.Stdout, cmd.Stderr = term.tty, term.tty
	a := startProcess(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the terminal:\n%q", term.out.String())
		}
	})
	const shown = "\rconverging 1/2 resources\x1b[K"
	term.out.waitFor(t, 4*progressTTYAfter+20*time.Second, shown)
	openGate(t, gate)
	if code := a.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	term.out.waitFor(t, 10*time.Second, "stopped")
	out := term.out.String()
	if strings.Contains(out, "converging 1/2 resources\r\n") {
		t.Error("the progress line was ended with a newline: it should be refreshed in place")
	}
	last := strings.LastIndex(out, shown) + len(shown)
	if !strings.HasPrefix(out[last:], eraseLine) {
		t.Errorf("after the last progress line comes %q, want it erased (%q) first", shorten(out[last:], 60), eraseLine)
	}
	if !strings.Contains(out[last:], "converged in ") {
		t.Error("no run summary after the progress line")
	}
}

// Log lines written while the status line shows go above it: the line is
// erased, the log line written, the line shown again under it.
func TestStatusLineStaysBelowTheLog(t *testing.T) {
	buf := newSyncBuffer()
	line := newStatusLine(buf)
	if _, err := line.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	line.set("converging 1/3 resources")
	line.set("converging 1/3 resources") // unchanged: not written again
	if _, err := line.Write([]byte("a log line\n")); err != nil {
		t.Fatal(err)
	}
	line.set("converging 2/3 resources")
	line.clear()
	if _, err := line.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	want := "before\n" +
		"\rconverging 1/3 resources\x1b[K" +
		"\r\x1b[Ka log line\nconverging 1/3 resources" +
		"\rconverging 2/3 resources\x1b[K" +
		"\r\x1b[K" +
		"after\n"
	if got := buf.String(); got != want {
		t.Errorf("the terminal got\n%q\nwant\n%q", got, want)
	}
}

// Loading a graph that takes longer than the notice's delay is announced,
// and its end logged with how long it took; a quick load logs nothing.
func TestSlowGraphLoadIsAnnouncedAndQuickOneIsNot(t *testing.T) {
	buf := newSyncBuffer()
	log := slog.New(slog.NewTextHandler(buf, nil))
	loaded := noticeSlow(log, 10*time.Millisecond, "loading the graph", "file", "big.yaml")
	buf.waitFor(t, 20*time.Second, `msg="loading the graph" file=big.yaml`)
	loaded("graph loaded", "resources", 10000)
	if out := buf.String(); !regexp.MustCompile(`msg="graph loaded" resources=10000 seconds=\d`).MatchString(out) {
		t.Errorf("log after a slow load:\n%s\nwant a graph loaded line with the resources and seconds", out)
	}

	buf = newSyncBuffer()
	log = slog.New(slog.NewTextHandler(buf, nil))
	noticeSlow(log, time.Hour, "loading the graph")("graph loaded")
	if out := buf.String(); out != "" {
		t.Errorf("a quick load logged:\n%s", out)
	}
}
