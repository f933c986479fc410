package loglimit

import (
	"fmt"
	"testing"
	"time"
)

// A reason is let through once per source per window, for at most the
// limiter's sources per window; the next line let through reports how
// many were held back since the last.
func TestLimiterOncePerSourcePerWindow(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewSized(func() time.Time { return now }, time.Minute, 2)
	allow := func(source string) (bool, int) { return l.Allow("refused", source) }
	if ok, n := allow("a"); !ok || n != 0 {
		t.Fatalf("first line from a: %v, %d suppressed", ok, n)
	}
	if ok, _ := allow("a"); ok {
		t.Error("a second line from a in one window got through")
	}
	if ok, n := allow("b"); !ok || n != 1 {
		t.Errorf("first line from b: %v, %d suppressed, want true, 1", ok, n)
	}
	if ok, _ := allow("c"); ok {
		t.Error("a third source got through in a window of two")
	}
	now = now.Add(time.Minute)
	if ok, n := allow("a"); !ok || n != 1 {
		t.Errorf("a in the next window: %v, %d suppressed, want true, 1", ok, n)
	}
	if got := l.TrackedSources("refused"); got != 1 {
		t.Errorf("%d sources tracked in the new window, want 1", got)
	}
}

// The table of reasons is bounded: reasons beyond Reasons share one window.
func TestLimiterBoundsReasons(t *testing.T) {
	l := New(time.Now)
	for i := range 2 * Reasons {
		l.Allow(fmt.Sprintf("reason %d", i), "")
	}
	if got := l.Tracked(); got != Reasons {
		t.Errorf("%d reasons tracked, want %d", got, Reasons)
	}
}

func TestTruncateKeepsCharactersWhole(t *testing.T) {
	if got := Truncate("héllo", 2); got != "h…" {
		t.Errorf("Truncate: %q, want %q", got, "h…")
	}
	if got := Truncate("short", 10); got != "short" {
		t.Errorf("Truncate of a short text: %q", got)
	}
}
