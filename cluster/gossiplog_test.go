package cluster

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/internal/loglimit"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// newTestWriter returns memberlist's logger as memberlistConfig makes it,
// over a recorder and a clock the test moves.
func newTestWriter() (*log.Logger, *logtest.Recorder, *fakeClock, *loglimit.Limiter) {
	logs := logtest.New()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	notes := loglimit.New(clock.now)
	return log.New(slogWriter{log: slog.New(logs), notes: notes}, "", 0), logs, clock, notes
}

// A flood of one reason from one address is one line per window. Other
// addresses get their own line, which says how many lines of its reason
// were suppressed since the last one logged.
func TestGossipLogOneLinePerReasonAndSource(t *testing.T) {
	ml, logs, clock, _ := newTestWriter()
	for i := range 1000 {
		ml.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.1:%d", 1000+i)
	}
	ml.Printf("[ERR] memberlist: Decrypt packet failed: unsupported encryption version 7 from=10.0.0.2:5")
	ml.Printf("[ERR] memberlist: failed to receive: read tcp 1.2.3.4:5->6.7.8.9:10: i/o timeout from=10.0.0.1:77")
	got := logs.Lines()
	want := []string{
		`Decrypt packet failed: no installed keys could decrypt the message remote="10.0.0.1:1000"`,
		`Decrypt packet failed: unsupported encryption version 7 remote="10.0.0.2:5" suppressed="999"`,
		`failed to receive: read tcp 1.2.3.4:5->6.7.8.9:10: i/o timeout remote="10.0.0.1:77"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	clock.t = clock.t.Add(loglimit.Window - time.Nanosecond)
	ml.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.1:1")
	clock.t = clock.t.Add(time.Nanosecond)
	ml.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.1:2")
	got = logs.Lines()[len(want):]
	if len(got) != 1 || !strings.Contains(got[0], `remote="10.0.0.1:2" suppressed="1"`) {
		t.Errorf("after the window: %q, want one line reporting 1 suppressed", got)
	}
}

// Spoofed sources do not multiply the lines, nor grow the limiter.
func TestGossipLogSpoofedSourcesBounded(t *testing.T) {
	ml, logs, clock, notes := newTestWriter()
	for w := range 3 {
		for i := range 10000 {
			ml.Printf("[ERR] memberlist: Decrypt packet failed: x from=10.%d.%d.%d:7946", w, i/256, i%256)
		}
		clock.t = clock.t.Add(loglimit.Window)
	}
	if n := len(logs.Lines()); n != 3*loglimit.Sources {
		t.Errorf("%d lines for 30,000 packets from 30,000 sources over 3 windows, want %d", n, 3*loglimit.Sources)
	}
	if n := notes.Tracked(); n != 1 {
		t.Errorf("%d reasons tracked, want 1", n)
	}
	if n := notes.TrackedSources("Decrypt packet failed"); n > loglimit.Sources {
		t.Errorf("%d sources tracked, want at most %d", n, loglimit.Sources)
	}
}

// Reasons that peers vary (numbers, names, errors) share a window, and
// the table of reasons is bounded.
func TestGossipLogReasonsBounded(t *testing.T) {
	ml, logs, _, notes := newTestWriter()
	for i := range 5000 {
		ml.Printf("[WARN] memberlist: Compound request had %d truncated messages from=10.0.0.1:1", i)
		ml.Printf("[ERR] memberlist: Got ping for unexpected node 'n%d' from=10.0.0.1:1", i)
		ml.Printf("[ERR] memberlist: msg type (%d) not supported from=10.0.0.1:1", i)
	}
	if n := len(logs.Lines()); n != 3 {
		t.Errorf("%d lines, want 3: %q", n, logs.Lines())
	}
	for i := range 5000 { // lines about no peer keep their numbers
		ml.Printf("[INFO] memberlist: Suspect s%d has failed, no acks received", i)
	}
	if n := notes.Tracked(); n > loglimit.Reasons {
		t.Errorf("%d reasons tracked, want at most %d", n, loglimit.Reasons)
	}
	if n := len(logs.Lines()); n > 3+loglimit.Reasons+loglimit.Sources {
		t.Errorf("%d lines for 5,000 reasons, want at most %d", n, 3+loglimit.Reasons+loglimit.Sources)
	}
	if lines := logs.Lines(); !strings.Contains(lines[4], "Suspect s1 has failed") {
		t.Errorf("s1's failure not logged apart from s0's: %q", lines[3:5])
	}
}

// Levels map as memberlist writes them; a line longer than
// loglimit.MaxLine is cut.
func TestGossipLogLevelsAndLength(t *testing.T) {
	logs := &levelRecorder{}
	ml := log.New(slogWriter{log: slog.New(logs), notes: loglimit.New(time.Now)}, "", 0)
	ml.Printf("[DEBUG] memberlist: Stream connection from=10.0.0.1:5")
	ml.Printf("[INFO] memberlist: Suspect a has failed")
	ml.Printf("[WARN] memberlist: Refuting a suspect message (from: b)")
	ml.Printf("[ERR] memberlist: Push/Pull with c failed: EOF")
	ml.Printf("[ERROR] memberlist: Failed to compress payload: x")
	ml.Printf("Err: Could not set the deadline: x")
	ml.Printf("[ERR] memberlist: Got ping for unexpected node '%s' from=<unknown address>", strings.Repeat("n", 5000))
	want := []string{
		"DEBUG Stream connection remote=10.0.0.1:5",
		"INFO Suspect a has failed",
		"WARN Refuting a suspect message (from: b)",
		"ERROR Push/Pull with c failed: EOF",
		"ERROR Failed to compress payload: x",
		"INFO Err: Could not set the deadline: x",
	}
	got := logs.lines
	if len(got) != len(want)+1 {
		t.Fatalf("lines %q", got)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d: %q, want %q", i, got[i], w)
		}
	}
	last := got[len(want)]
	if !strings.HasSuffix(last, "… remote=<unknown address>") || len(last) > loglimit.MaxLine+64 {
		t.Errorf("long line not cut: %d bytes ending %q", len(last), last[max(0, len(last)-40):])
	}
}

// levelRecorder keeps "LEVEL message k=v" of each record.
type levelRecorder struct{ lines []string }

func (r *levelRecorder) Enabled(_ context.Context, l slog.Level) bool { return true }

func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	r.lines = append(r.lines, line)
	return nil
}

func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler      { return r }

// Lines at levels the logger drops are not counted against the limit.
func TestGossipLogDisabledLevelsIgnored(t *testing.T) {
	var out strings.Builder
	notes := loglimit.New(time.Now)
	ml := log.New(slogWriter{log: slog.New(slog.NewTextHandler(&out, nil)), notes: notes}, "", 0)
	for range 100 {
		ml.Printf("[DEBUG] memberlist: Stream connection from=10.0.0.1:5")
	}
	if out.Len() != 0 || notes.Tracked() != 0 {
		t.Errorf("debug lines reached the limiter or the log: %q, %d reasons", out.String(), notes.Tracked())
	}
}

// The source is memberlist's last "from=", after any text a peer chose.
func TestGossipLogSourceIsLastFrom(t *testing.T) {
	for _, tc := range []struct{ line, rest, from string }{
		{`discarding packet with unacceptable label "a from=1.1.1.1:1": from=10.0.0.1:5`, `discarding packet with unacceptable label "a from=1.1.1.1:1":`, "10.0.0.1:5"},
		{"Stream connection from=10.0.0.1:5", "Stream connection", "10.0.0.1:5"},
		{"from=10.0.0.1:5 x", "x", "10.0.0.1:5"},
		{"bad from=<unknown address>", "bad", "<unknown address>"},
		{"Refuting a suspect message (from: b)", "Refuting a suspect message (from: b)", ""},
	} {
		rest, from := cutSource(tc.line)
		if rest != tc.rest || from != tc.from {
			t.Errorf("cutSource(%q) = %q, %q; want %q, %q", tc.line, rest, from, tc.rest, tc.from)
		}
	}
}
