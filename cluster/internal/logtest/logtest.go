// Package logtest records what the cluster packages log, for their tests
// to wait for and inspect.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Line is one recorded record.
type Line struct {
	Level slog.Level
	Time  time.Time
	Msg   string
	// Attrs are the record's attributes and its logger's, as text.
	Attrs map[string]string
	// Text is the message and the logger's attributes then the
	// record's, as key=value; Quoted the message and the record's
	// attributes then the logger's, as key="value".
	Text, Quoted string
}

// Recorder is a slog.Handler that keeps every record; handlers made from
// it by WithAttrs record into it.
type Recorder struct {
	*book
	attrs []slog.Attr
}

type book struct {
	mu    sync.Mutex
	lines []Line
	added chan struct{} // signalled after each record; capacity 1
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{book: &book{added: make(chan struct{}, 1)}} }

// Enabled records every level.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle records rec.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	line := Line{Level: rec.Level, Time: rec.Time, Msg: rec.Message, Attrs: map[string]string{}}
	var recAttrs []slog.Attr
	rec.Attrs(func(a slog.Attr) bool { recAttrs = append(recAttrs, a); return true })
	var text, quoted strings.Builder
	text.WriteString(rec.Message)
	quoted.WriteString(rec.Message)
	for _, a := range slices.Concat(r.attrs, recAttrs) {
		line.Attrs[a.Key] = a.Value.String()
		fmt.Fprintf(&text, " %s=%s", a.Key, a.Value)
	}
	for _, a := range slices.Concat(recAttrs, r.attrs) {
		fmt.Fprintf(&quoted, " %s=%q", a.Key, a.Value.String())
	}
	line.Text, line.Quoted = text.String(), quoted.String()
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	select {
	case r.added <- struct{}{}:
	default:
	}
	return nil
}

// WithAttrs returns a handler that adds attrs to what it records here.
func (r *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Recorder{book: r.book, attrs: append(slices.Clip(r.attrs), attrs...)}
}

// WithGroup ignores groups.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Lines returns the Quoted text of every record so far.
func (r *Recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.lines))
	for i, l := range r.lines {
		out[i] = l.Quoted
	}
	return out
}

// Matching returns the records for which keep is true.
func (r *Recorder) Matching(keep func(Line) bool) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Line
	for _, l := range r.lines {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// Wait returns the Quoted text of the first record whose Quoted text
// contains every one of parts, failing t if none comes within timeout.
func (r *Recorder) Wait(t testing.TB, timeout time.Duration, parts ...string) string {
	t.Helper()
	expire := time.After(timeout)
	for {
		if l := r.Matching(func(l Line) bool { return containsAll(l.Quoted, parts) }); len(l) > 0 {
			return l[0].Quoted
		}
		select {
		case <-r.added:
		case <-expire:
			t.Fatalf("no log line with %q within %v", parts, timeout)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
