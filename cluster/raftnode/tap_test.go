package raftnode_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logTap records the records of a node's logger for a test.
type logTap struct {
	mu    sync.Mutex
	lines []tapLine
	attrs []slog.Attr
	root  *logTap
}

type tapLine struct {
	level slog.Level
	time  time.Time
	msg   string
	text  string // message and attributes
	attrs map[string]string
}

func (l *logTap) Enabled(context.Context, slog.Level) bool { return true }

func (l *logTap) Handle(_ context.Context, r slog.Record) error {
	line := tapLine{level: r.Level, time: r.Time, msg: r.Message, attrs: map[string]string{}}
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
		return true
	}
	for _, a := range l.attrs {
		add(a)
	}
	r.Attrs(add)
	line.text = b.String()
	root := l.rootTap()
	root.mu.Lock()
	root.lines = append(root.lines, line)
	root.mu.Unlock()
	return nil
}

func (l *logTap) WithAttrs(as []slog.Attr) slog.Handler {
	return &logTap{attrs: append(append([]slog.Attr(nil), l.attrs...), as...), root: l.rootTap()}
}

func (l *logTap) WithGroup(string) slog.Handler { return l }

func (l *logTap) rootTap() *logTap {
	if l.root != nil {
		return l.root
	}
	return l
}

// matching returns the lines for which keep is true.
func (l *logTap) matching(keep func(tapLine) bool) []tapLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []tapLine
	for _, line := range l.lines {
		if keep(line) {
			out = append(out, line)
		}
	}
	return out
}

// eventually waits (in fake time) for cond, failing after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-time.After(20 * time.Millisecond)
	}
	return time.Since(t0)
}
