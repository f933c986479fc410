package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/engine"
)

// engineRef is the agent's engine, for the local API's /v1/resources and
// the run summary: the API starts before the engine exists.
type engineRef struct{ p atomic.Pointer[engine.Engine] }

func (r *engineRef) set(e *engine.Engine) { r.p.Store(e) }

// snapshot is the engine's status, empty before it exists.
func (r *engineRef) snapshot() engine.Snapshot {
	if e := r.p.Load(); e != nil {
		return e.Snapshot()
	}
	return engine.Snapshot{}
}

// resources is the API's Config.Resources.
func (r *engineRef) resources() api.Resources { return toAPIResources(r.snapshot()) }

// toAPIResources converts the engine's snapshot to the API's form.
func toAPIResources(snap engine.Snapshot) api.Resources {
	c := snap.Counts
	out := api.Resources{Graph: snap.Graph, Converged: snap.Converged,
		Counts: api.ResourceCounts{Total: c.Total, OK: c.OK, Dirty: c.Dirty, Running: c.Running,
			Waiting: c.Waiting, Failed: c.Failed, Changed: c.Changed},
		Resources: make([]api.Resource, len(snap.Resources))}
	for i, r := range snap.Resources {
		out.Resources[i] = api.Resource{Kind: r.ID.Kind, Name: r.ID.Name, State: string(r.State), Waiting: r.Waiting,
			Error: r.Error, LastStart: r.LastStart, LastDurationSeconds: r.LastDuration.Seconds(),
			Changed: r.Changed, Changes: r.Changes, RetriesLeft: r.RetriesLeft,
			SemaHeld: r.SemaHeld, SemaWaiting: r.SemaWaiting}
	}
	return out
}

// printResources prints a `resources:` summary line, then a table of the
// resources: kind, name, state, when the last CheckApply began, how long
// it took and the last error, shortened.
func printResources(w io.Writer, rs api.Resources, now time.Time) error {
	c := rs.Counts
	conv := "not converged"
	if rs.Converged {
		conv = "converged"
	}
	fmt.Fprintf(w, "resources:     %d (%d ok, %d dirty, %d running, %d waiting, %d failed), %d changed, %s\n",
		c.Total, c.OK, c.Dirty, c.Running, c.Waiting, c.Failed, c.Changed, conv)
	if len(rs.Resources) == 0 {
		return nil
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSTATE\tLAST RUN\tDURATION\tERROR")
	for _, r := range rs.Resources {
		last, dur := "-", "-"
		if !r.LastStart.IsZero() {
			last = now.Sub(r.LastStart).Round(time.Second).String() + " ago"
			dur = roundDuration(time.Duration(r.LastDurationSeconds * float64(time.Second))).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Name, stateText(r), last, dur, shorten(r.Error, errorWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeTrimmed(w, table.Bytes())
}

// writeTrimmed writes text without the spaces that end its lines (the
// padding of a table's cells before an empty last one).
func writeTrimmed(w io.Writer, text []byte) error {
	var b bytes.Buffer
	for line := range bytes.Lines(text) {
		b.Write(bytes.TrimRight(line, " \n"))
		if bytes.HasSuffix(line, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// errorWidth is how much of an error the status table shows.
const errorWidth = 60

// stateText is a resource's state with what it waits for, and the retries
// left of a failed resource that will be retried.
func stateText(r api.Resource) string {
	switch {
	case r.State == "failed" && r.Waiting == "retry" && r.RetriesLeft >= 0:
		return fmt.Sprintf("failed (retrying, %d left)", r.RetriesLeft)
	case r.Waiting != "":
		return r.State + " (" + r.Waiting + ")"
	}
	return r.State
}

// roundDuration rounds d to a precision that suits its size.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// shorten returns the first line of s, cut to width runes with "…".
func shorten(s string, width int) string {
	line, _, more := strings.Cut(s, "\n")
	r := []rune(line)
	if len(r) > width {
		return string(r[:width-1]) + "…"
	}
	if more {
		return line + " …"
	}
	return line
}

// runSummary logs one line after the engine's first convergence and, with
// --converged-exit, one at exit (unless it would repeat the first): how
// long the engine took, how many resources it runs, how many changed
// something and how many failed.
type runSummary struct {
	eng   *engineRef
	noop  bool
	exit  bool // --converged-exit
	log   *slog.Logger
	start time.Time

	mu         sync.Mutex
	converged  int // converged events seen
	lastLogged bool
}

func newRunSummary(eng *engineRef, noop, exit bool, log *slog.Logger) *runSummary {
	return &runSummary{eng: eng, noop: noop, exit: exit, log: log}
}

// begin marks when the engine starts.
func (s *runSummary) begin(now time.Time) {
	s.mu.Lock()
	s.start = now
	s.mu.Unlock()
}

// changed takes the engine's converged state: it runs on the engine's
// goroutine and only copies its status.
func (s *runSummary) changed(st engine.Status, now time.Time) {
	if !st.Converged {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.converged++
	if s.converged == 1 {
		s.line("converged", now)
		s.lastLogged = true
		return
	}
	s.lastLogged = false
}

// finish logs the exit summary, with --converged-exit, unless the first
// convergence's line already said it all.
func (s *runSummary) finish(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exit || (s.converged == 1 && s.lastLogged) {
		return
	}
	what := "stopped"
	if s.converged > 0 {
		what = "finished"
	}
	s.line(what, now)
}

// line logs the summary under s.mu.
func (s *runSummary) line(what string, now time.Time) {
	c := s.eng.snapshot().Counts
	took := now.Sub(s.start)
	changed := "changed"
	if s.noop {
		changed = "would change"
	}
	s.log.Info(fmt.Sprintf("%s in %.1f s: %s resources, %s %s, %s failed", what, took.Seconds(),
		thousands(c.Total), thousands(c.Changed), changed, thousands(c.Failed)),
		"summary", what, "seconds", took.Seconds(), "resources", c.Total, "changed", c.Changed, "failed", c.Failed)
}

// thousands formats n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
