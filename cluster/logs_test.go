package cluster

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

// logRecorder is a slog.Handler that keeps records as text and lets a test
// wait for one that matches. Handlers made by WithAttrs share its lines.
type logRecorder struct {
	*logLines
	attrs []slog.Attr
}

type logLines struct {
	mu    sync.Mutex
	lines []string
	added chan struct{} // signalled after each record; capacity 1
}

func newLogRecorder() *logRecorder {
	return &logRecorder{logLines: &logLines{added: make(chan struct{}, 1)}}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		return true
	}
	rec.Attrs(add)
	for _, a := range r.attrs {
		add(a)
	}
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	select {
	case r.added <- struct{}{}:
	default:
	}
	return nil
}

func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{logLines: r.logLines, attrs: append(slices.Clip(r.attrs), attrs...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// wait returns the first line containing every one of parts, failing the
// test if none arrives within the timeout.
func (r *logRecorder) wait(t *testing.T, timeout time.Duration, parts ...string) string {
	t.Helper()
	expire := time.After(timeout)
	for {
		r.mu.Lock()
		for _, l := range r.lines {
			if containsAll(l, parts) {
				r.mu.Unlock()
				return l
			}
		}
		r.mu.Unlock()
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
