package resources

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// logRecord is one logged record: its level, message and attributes.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logRecorder is a slog handler that keeps every record, for tests that
// count and inspect what a resource logged.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, rec)
	return nil
}

// take returns the records logged since the last take and forgets them.
func (h *logRecorder) take() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.records
	h.records = nil
	return r
}

// only wants exactly one record in recs, with message msg at info level,
// and returns it.
func only(t *testing.T, recs []logRecord, msg string) logRecord {
	t.Helper()
	return onlyAt(t, recs, slog.LevelInfo, msg)
}

// onlyAt wants exactly one record in recs with message msg, at level, and
// returns it.
func onlyAt(t *testing.T, recs []logRecord, level slog.Level, msg string) logRecord {
	t.Helper()
	var found []logRecord
	for _, r := range recs {
		if r.msg == msg {
			found = append(found, r)
		}
	}
	if len(found) != 1 || found[0].level != level {
		var all []string
		for _, r := range recs {
			all = append(all, r.level.String()+" "+r.msg)
		}
		t.Fatalf("want exactly one %s record %q, got: %s", level, msg, strings.Join(all, "; "))
	}
	return found[0]
}
