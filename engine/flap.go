package engine

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Flap damping. A vertex that changes something on every run, many times a
// second, is being undone as fast as it works: another resource manages the
// same thing, or a process fights it. Logging each run would bury
// everything else (two file resources on one path once wrote 11,700 lines
// in six seconds), so the engine notices, says so once at warning with the
// rate, and turns the vertex's per-run lines (its own and the resource's)
// down to debug until it settles. It does not slow the vertex down: meta
// limit does that, where the user wants it.
const (
	flapWindow  = time.Second // changes are counted per window
	flapChanges = 10          // changes in one window that make a vertex flap
)

// flapMeter counts a vertex's changing runs. It is owned by the scheduler
// goroutine, apart from quiet, which the resource's logger reads.
type flapMeter struct {
	windowStart time.Time
	changes     int // changing runs in the current window
	flapping    bool
	since       time.Time // when the flapping began
	last        time.Time // the last changing run
	total       int       // changing runs since then
	quiet       atomic.Bool
}

// flapEvent is what a run told the meter.
type flapEvent uint8

const (
	flapNone    flapEvent = iota
	flapStarted           // the vertex is flapping: warn once
	flapEnded             // it settled
)

// changed records a run that changed something (or would have, in noop) at
// now. rate is the changes per second of the window that made the vertex
// flap, with flapStarted.
func (f *flapMeter) changed(now time.Time) (ev flapEvent, rate float64) {
	if elapsed := now.Sub(f.windowStart); elapsed >= flapWindow {
		closed := f.changes // in the window that just closed
		if elapsed >= 2*flapWindow {
			closed = 0 // and a whole window without any came after it
		}
		switch {
		case closed >= flapChanges && !f.flapping:
			f.flapping, f.since, f.total = true, f.windowStart, f.changes
			ev, rate = flapStarted, float64(f.changes)/elapsed.Seconds()
		case closed < flapChanges && f.flapping:
			f.flapping = false
			ev = flapEnded
		}
		f.windowStart, f.changes = now, 0
	}
	f.changes++
	if f.flapping {
		f.total++
		f.last = now
	}
	f.quiet.Store(f.flapping || f.changes > flapChanges)
	return ev, rate
}

// settled records a run that found the vertex in state. It reports
// flapEnded if the vertex was flapping.
func (f *flapMeter) settled(now time.Time) flapEvent {
	was := f.flapping
	f.flapping, f.changes, f.windowStart = false, 0, now
	f.quiet.Store(false)
	if was {
		return flapEnded
	}
	return flapNone
}

// runLevel is the level of a vertex's per-run log lines: info, or debug
// while it flaps.
func (f *flapMeter) runLevel() slog.Level {
	if f.quiet.Load() {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// noteFlap logs what a run told n's meter.
func (s *scheduler) noteFlap(n *node, ev flapEvent, rate float64) {
	f := &n.flap
	switch ev {
	case flapStarted:
		s.log.Warn("resource changes something on every run, many times a second: something undoes its work "+
			"(another resource managing the same thing, or a process); its per-run lines go to debug until it settles",
			"resource", n.id.String(), "changes_per_second", int(rate+0.5))
	case flapEnded:
		s.log.Info("resource settled after flapping", "resource", n.id.String(),
			"changes", f.total, "lasted", f.last.Sub(f.since).Round(time.Millisecond))
	}
}

// dampedHandler turns records below warning down to debug while its vertex
// flaps, so a resource's own per-run lines go quiet with the engine's.
type dampedHandler struct {
	slog.Handler
	quiet *atomic.Bool
}

func (h dampedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelWarn && h.quiet.Load() {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h dampedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn && h.quiet.Load() {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h dampedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return dampedHandler{Handler: h.Handler.WithAttrs(as), quiet: h.quiet}
}

func (h dampedHandler) WithGroup(name string) slog.Handler {
	return dampedHandler{Handler: h.Handler.WithGroup(name), quiet: h.quiet}
}
