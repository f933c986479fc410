// Package loglimit keeps floods out of the cluster's logs: a Limiter
// lets a line of one reason through at most once per source per window,
// for a few sources per window, and counts the lines it held back.
package loglimit

import (
	"sync"
	"time"
	"unicode/utf8"
)

// memberlist logs one line for every packet or stream it cannot use, and
// anyone can send those: 20,000 spoofed UDP packets of garbage made 20,000
// ERROR lines in under three seconds; the cluster port's refusals are the
// same. Such lines are therefore rate-limited by reason and source before
// they reach the log: a reason (the line's text up to its details) is
// logged at most once per source IP per Window, and for at most Sources
// sources per window in all, since UDP sources are spoofed for free. The
// next line of a reason that gets through says how many were suppressed
// before it.
const (
	Window  = 10 * time.Second
	Sources = 5
	// Reasons bounds the reasons tracked at once; lines of further
	// reasons share one window.
	Reasons = 256
	// MaxReason and MaxLine bound the key kept per reason and the text
	// logged per line (memberlist quotes what peers sent, such as node
	// names and metadata).
	MaxReason = 96
	MaxLine   = 1024
)

// Attribute keys of rate-limited log lines.
const (
	KeyRemote     = "remote"
	KeySuppressed = "suppressed"
)

// Limiter decides which lines of a flood are logged: a reason at most
// once per source per window, and for at most maxSources sources per
// window. It is safe for concurrent use.
type Limiter struct {
	now        func() time.Time
	span       time.Duration
	maxSources int

	mu      sync.Mutex
	reasons map[string]*reasonWindow
	other   reasonWindow // reasons beyond Reasons
}

// reasonWindow is one reason's current window.
type reasonWindow struct {
	start time.Time
	// sources logged in this window; at most the limiter's maxSources.
	sources map[string]struct{}
	// suppressed counts lines not logged since the last one that was.
	suppressed int
}

// New returns a limiter of Window, and Sources sources per window.
func New(now func() time.Time) *Limiter { return NewSized(now, Window, Sources) }

// NewSized returns a limiter of windows of span, each logging a reason for
// at most sources sources.
func NewSized(now func() time.Time, span time.Duration, sources int) *Limiter {
	return &Limiter{now: now, span: span, maxSources: sources, reasons: map[string]*reasonWindow{}}
}

// Tracked returns how many reasons the limiter keeps a window for.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reasons)
}

// TrackedSources returns how many sources reason's window holds.
func (l *Limiter) TrackedSources(reason string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.reasons[reason]; w != nil {
		return len(w.sources)
	}
	return 0
}

// Allow reports whether a line of reason from source (an IP, or "" for
// lines about no peer) may be logged and, if so, how many lines of that
// reason were suppressed since the last one logged.
func (l *Limiter) Allow(reason, source string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.window(reason, now)
	if w.sources == nil || now.Sub(w.start) >= l.span {
		w.start = now
		w.sources = make(map[string]struct{}, 1)
	}
	if _, seen := w.sources[source]; seen || len(w.sources) >= l.maxSources {
		w.suppressed++
		return false, 0
	}
	w.sources[source] = struct{}{}
	suppressed, w.suppressed = w.suppressed, 0
	return true, suppressed
}

// window returns reason's window, making room for it by forgetting
// expired ones when the table is full. Forgetting a window loses its count
// of suppressed lines, which no line has reported within a window: a
// flood that stopped.
func (l *Limiter) window(reason string, now time.Time) *reasonWindow {
	if w, ok := l.reasons[reason]; ok {
		return w
	}
	if len(l.reasons) >= Reasons {
		for r, w := range l.reasons {
			if now.Sub(w.start) >= l.span {
				delete(l.reasons, r)
			}
		}
	}
	if len(l.reasons) >= Reasons {
		return &l.other
	}
	w := &reasonWindow{}
	l.reasons[reason] = w
	return w
}

// Truncate cuts s to at most n bytes, on a character boundary.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
