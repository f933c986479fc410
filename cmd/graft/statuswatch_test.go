package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/graftcm/graft/api"
)

// watchWait bounds how long a test waits for `graft status --watch` to
// show something: generous, since the machine may be loaded.
const watchWait = 30 * time.Second

// waitOutput waits until cond holds on b's contents, failing after
// watchWait.
func waitOutput(t *testing.T, b *syncBuffer, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	for !cond(b.String()) {
		select {
		case <-b.grew:
		case <-deadline.C:
			t.Fatalf("no %s within %v; output:\n%q", what, watchWait, b.String())
		}
	}
}

// On a terminal, status --watch erases the screen once, then redraws each
// status over the last one (cursor home, each line erasing what remains of
// the old one, the rest of the screen erased below), cut to the
// terminal's height; each redraw shows the agent's state anew; Ctrl-C
// (SIGINT) ends it with exit 0.
func TestStatusWatchRedrawsInPlaceOnATerminal(t *testing.T) {
	term := openTerminal(t)
	ws := unix.Winsize{Row: 12, Col: 100} // the status shows down to its revision, then is cut
	if err := ioctl(term.tty, unix.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		t.Fatalf("sizing the terminal: %v", err)
	}
	sock, w := testAPI(t)
	cmd := exec.Command(os.Args[0], "status", "--watch", "--interval", "200ms", "--api", sock)
	stderr := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = term.tty, stderr
	p := startProcess(t, cmd)
	frames := func(s string) int { return strings.Count(s, ansiHome) }
	waitOutput(t, term.out, "first redraw", func(s string) bool { return frames(s) >= 1 && strings.Contains(s, ansiClearDown) })
	rev, err := w.Put(t.Context(), "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	newRev := fmt.Sprintf("revision:      %d"+ansiClearLine+"\r\n", rev)
	waitOutput(t, term.out, "a redraw with the new revision", func(s string) bool {
		i := strings.LastIndex(s, ansiHome)
		return strings.Contains(s[i:], newRev) && strings.Contains(s[i:], ansiClearDown)
	})
	p.signal(os.Interrupt)
	if code := p.exitCode(watchWait); code != 0 {
		t.Fatalf("status --watch exited %d after SIGINT, want 0; its stderr: %s", code, stderr.String())
	}
	out := term.out.String()
	if !strings.HasPrefix(out, ansiHome+ansiClear) || strings.Count(out, ansiClear) != 1 {
		t.Errorf("want the screen erased once, at the start: %q", out)
	}
	for i, f := range strings.Split(out, ansiHome)[1:] {
		f = strings.TrimPrefix(f, ansiClear)
		if !strings.HasSuffix(f, ansiClearDown) {
			continue // the last frame, if SIGINT came as it was written
		}
		lines := strings.Split(strings.TrimSuffix(f, ansiClearDown), "\r\n")
		lines = lines[:len(lines)-1] // after the last line's end
		if len(lines) > int(ws.Row)-1 {
			t.Errorf("frame %d has %d lines on a terminal of %d rows", i, len(lines), ws.Row)
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, ansiClearLine) {
				t.Errorf("frame %d: line %q does not erase the rest of the old line", i, l)
			}
		}
		if !strings.HasPrefix(lines[0], "every 200ms: graft status (Ctrl-C to stop)") ||
			!strings.Contains(f, "state:         Leader") ||
			!regexp.MustCompile(`^\.\.\. \d+ more lines: enlarge the terminal`).MatchString(lines[len(lines)-1]) {
			t.Errorf("frame %d is not a status cut to the terminal: %q", i, f)
		}
	}
}

// Elsewhere than on a terminal, status --watch prints one status after
// another, each after a line naming its time, with no terminal controls,
// and exits 0 when interrupted.
func TestStatusWatchPrintsABlockPerIntervalElsewhere(t *testing.T) {
	sock, _ := testAPI(t)
	out := newSyncBuffer()
	stop := startStatusWatch(t, out, "--interval", "100ms", "--api", sock)
	marker := regexp.MustCompile(`(?m)^--- graft status at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ---$`)
	waitOutput(t, out, "three statuses", func(s string) bool { return len(marker.FindAllString(s, -1)) >= 3 })
	if code := stop(); code != 0 {
		t.Fatalf("exit %d after interrupt, want 0", code)
	}
	s := out.String()
	if strings.Contains(s, "\x1b") {
		t.Errorf("terminal controls in a watch that is not on a terminal: %q", s)
	}
	blocks := marker.Split(s, -1)
	if blocks[0] != "" {
		t.Errorf("output before the first marker: %q", blocks[0])
	}
	for _, b := range blocks[1 : len(blocks)-1] { // the last may be cut by the interrupt
		if !strings.HasPrefix(b, "\nnode:") || !strings.Contains(b, "\nstate:         Leader\n") {
			t.Errorf("a block is not a status: %q", b)
		}
	}
}

// status --watch --json prints one status a line, each a whole JSON
// object.
func TestStatusWatchJSONPrintsAnObjectALine(t *testing.T) {
	sock, _ := testAPI(t)
	out := newSyncBuffer()
	stop := startStatusWatch(t, out, "--json", "--interval", "100ms", "--api", sock)
	waitOutput(t, out, "two lines", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	if code := stop(); code != 0 {
		t.Fatalf("exit %d after interrupt, want 0", code)
	}
	lines := strings.Split(out.String(), "\n")
	for _, l := range lines[:2] {
		var rep statusReport
		if err := json.Unmarshal([]byte(l), &rep); err != nil || rep.State != "Leader" || rep.Cluster.Leader != "node0" {
			t.Errorf("line %q: %v, %+v", l, err, rep)
		}
	}
}

// startStatusWatch runs `graft status --watch args...` in-process until
// the returned function interrupts it and returns its exit code.
func startStatusWatch(t *testing.T, out *syncBuffer, args ...string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: &errOut, hard: make(chan struct{})}
	go func() { done <- runEnv(ctx, e, append([]string{"graft", "status", "--watch"}, args...)) }()
	return func() int {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Logf("status --watch stderr: %s", errOut.String())
			}
			return code
		case <-time.After(watchWait):
			t.Fatalf("status --watch still running %v after it was interrupted", watchWait)
			return -1
		}
	}
}

// --interval is for --watch, and at least minWatchInterval.
func TestStatusIntervalIsChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--watch", "--interval", "10ms"}, "status: --interval 10ms: want at least 100ms"},
		{[]string{"--interval", "1s"}, "status: --interval needs --watch"},
	} {
		code, stdout, stderr := graft(t, append([]string{"status", "--api", "/nonexistent/graft.sock"}, tc.args...)...)
		if code != exitUsage || stdout != "" || stderr != "graft: "+tc.want+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, stdout, stderr, exitUsage, tc.want)
		}
	}
}

// A status taller than the terminal is cut to one line less than its
// height (the last line's end must not scroll the screen), the last line
// saying how many are not shown; a shorter one is drawn whole.
func TestWatchFrameFitsTheTerminal(t *testing.T) {
	text := []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n")
	s := &watchScreen{drawn: true}
	l := ansiClearLine + "\n"
	want := ansiHome + "1" + l + "2" + l + "3" + l + "... 7 more lines: enlarge the terminal, or see graft status" + l + ansiClearDown
	if got := string(s.frame(text, 5)); got != want {
		t.Errorf("10 lines on 5 rows:\n got %q\nwant %q", got, want)
	}
	if got := string(s.frame(text, 11)); strings.Count(got, l) != 10 || strings.Contains(got, "more lines") {
		t.Errorf("10 lines on 11 rows: %q", got)
	}
	if got := string(s.frame(text, 0)); strings.Count(got, l) != 10 {
		t.Errorf("10 lines on a terminal of unknown size: %q", got)
	}
}

// The hosts' part: a summary line counting the hosts by gossip state
// (suspect and not members only when there are any), the voters and
// non-voters, and the live hosts converged (a dead host's old value does
// not count); then a row a host, its last contact with the leader or "-".
func TestPrintHostsTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := api.Status{RaftStatus: api.RaftStatus{ID: "a", Leader: "a", Term: 7, Servers: []api.RaftServer{
		{ID: "a", Suffrage: "voter"}, {ID: "b", Suffrage: "nonvoter"}, {ID: "c", Suffrage: "nonvoter"}}}}
	hosts := []hostState{
		{Host: "a", Gossip: "alive", Role: "leader", Converged: "true"},
		{Host: "b", Gossip: "suspect", Role: "nonvoter", Converged: "false", LastContact: now.Add(-1500 * time.Millisecond)},
		{Host: "c", Gossip: "dead", Role: "nonvoter", Converged: "true", LastContact: now.Add(-42 * time.Second)},
		{Host: "d", Role: "none"},
	}
	var b bytes.Buffer
	err := printHosts(&b, summarize(st, hosts), hosts, now)
	want := "hosts:         4 (1 alive, 1 suspect, 1 dead, 0 left, 1 not members), 1 voter, 2 non-voters, 1 of 2 live converged\n" +
		"HOST  GOSSIP   ROLE      LAST CONTACT  CONVERGED\n" +
		"a     alive    leader    -             yes\n" +
		"b     suspect  nonvoter  1.5s ago      no\n" +
		"c     dead     nonvoter  42.0s ago     yes\n" +
		"d     -        none      -             unknown\n"
	if err != nil || b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if sum := summarize(st, nil); sum.Dead != nil || sum.Converged != nil || !slices.Equal(sum.Voters, []string{"a"}) {
		t.Errorf("summary with the hosts not known: %+v", sum)
	}
}
