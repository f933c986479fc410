package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/graftcm/graft/engine"
)

// How the first convergence reports its progress. In a log (text or JSON)
// a line appears only once it has taken progressLogEvery, then at most one
// every progressLogEvery; on a terminal (text logs) one line is kept at the
// bottom of the screen, shown after progressTTYAfter and refreshed in place
// every progressTTYEvery.
const (
	progressLogEvery = 5 * time.Second
	progressTTYAfter = time.Second
	progressTTYEvery = 250 * time.Millisecond
	// loadNoticeAfter is how long loading a graph may take before the log
	// says that it is loading.
	loadNoticeAfter = time.Second
)

// progress reports the first convergence of the agent's graph: how many of
// its resources have had their first CheckApply (in state or failed), out
// of how many. It reads the engine's counts, so it never waits on the
// scheduler, and stops once every resource is done.
type progress struct {
	counts func() engine.Counts
	log    *slog.Logger
	line   *statusLine // nil: report to the log
	json   bool        // the log is JSON: records with a constant message
}

// newProgress reports the counts of eng: on line if it is not nil (a
// terminal), else to log, in format.
func newProgress(eng *engineRef, line *statusLine, format logFormat, log *slog.Logger) *progress {
	return &progress{counts: eng.counts, log: log, line: line, json: format == logJSON}
}

// firstDone reports whether the first convergence is over: the engine runs
// a graph and every resource of it is in state or failed.
func firstDone(c engine.Counts) bool { return c.Total > 0 && c.OK+c.Failed == c.Total }

// run reports until the first convergence is over or ctx ends; on a
// terminal it then clears its line.
func (p *progress) run(ctx context.Context) error {
	start := time.Now()
	first, every := progressLogEvery, progressLogEvery
	if p.line != nil {
		first, every = progressTTYAfter, progressTTYEvery
		defer p.line.clear()
	}
	tick := time.NewTimer(first)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		c := p.counts()
		if firstDone(c) {
			return nil
		}
		if c.Total > 0 {
			p.report(c, time.Since(start))
		}
		tick.Reset(every)
	}
}

// report shows the counts c, elapsed into the first convergence.
func (p *progress) report(c engine.Counts, elapsed time.Duration) {
	done := c.OK + c.Failed
	text := fmt.Sprintf("converging %s/%s resources", thousands(done), thousands(c.Total))
	if p.line != nil {
		if c.Failed > 0 {
			text += fmt.Sprintf(" (%s failed)", thousands(c.Failed))
		}
		p.line.set(text)
		return
	}
	msg := text
	if p.json {
		msg = "converging"
	}
	p.log.Info(msg, "done", done, "total", c.Total, "running", c.Running, "waiting", c.Waiting,
		"failed", c.Failed, "seconds", elapsed.Round(time.Millisecond).Seconds())
}

// statusLine is a terminal that shows the log and, below it, one line
// refreshed in place: writes (log records) first clear the line, then put
// it back under what they wrote. It is safe for concurrent use.
type statusLine struct {
	mu    sync.Mutex
	w     io.Writer
	text  string // the line; "" none
	shown bool   // the text is on the screen
}

// eraseLine returns the cursor to the start of the line and clears it.
const eraseLine = "\r\x1b[K"

func newStatusLine(w io.Writer) *statusLine { return &statusLine{w: w} }

// Write writes p above the status line.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown {
		if _, err := io.WriteString(s.w, eraseLine); err != nil {
			return 0, err
		}
		s.shown = false
	}
	n, err := s.w.Write(p)
	if err == nil && s.text != "" && bytes.HasSuffix(p, []byte("\n")) {
		if _, err := io.WriteString(s.w, s.text); err == nil {
			s.shown = true
		}
	}
	return n, err
}

// set shows text as the status line, in place of the one shown.
func (s *statusLine) set(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if text == s.text && s.shown {
		return
	}
	s.text = text
	if _, err := io.WriteString(s.w, "\r"+text+"\x1b[K"); err == nil {
		s.shown = true
	}
}

// clear removes the status line.
func (s *statusLine) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown {
		_, _ = io.WriteString(s.w, eraseLine)
	}
	s.text, s.shown = "", false
}

// noticeSlow logs msg (with attrs) if the work it is called before has not
// finished after `after`. The function returned marks the work finished:
// if the notice was logged, it logs doneMsg with how long the work took
// (and doneAttrs). It must be called once.
func noticeSlow(log *slog.Logger, after time.Duration, msg string, attrs ...any) (finished func(doneMsg string, doneAttrs ...any)) {
	start := time.Now()
	var logged bool // written by the goroutine, read after it stopped
	stop := goRun(func(ctx context.Context) error {
		t := time.NewTimer(after)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			log.Info(msg, attrs...)
			logged = true
		}
		return nil
	}, nil)
	return func(doneMsg string, doneAttrs ...any) {
		stop()
		if logged {
			log.Info(doneMsg, append(doneAttrs, "seconds", time.Since(start).Round(time.Millisecond).Seconds())...)
		}
	}
}

// counts is the engine's counts, zero before it exists.
func (r *engineRef) counts() engine.Counts {
	if e := r.p.Load(); e != nil {
		return e.Counts()
	}
	return engine.Counts{}
}

// logWriter is where the log of a run goes: stderr, under a status line
// when stderr is a terminal and the log is text (f); the
// line is nil otherwise.
func logWriter(f logFormat, stderr io.Writer) (io.Writer, *statusLine) {
	if f != logText || !isTerminal(stderr) {
		return stderr, nil
	}
	line := newStatusLine(stderr)
	return line, line
}
