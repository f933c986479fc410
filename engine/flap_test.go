package engine_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
)

// fighter is a resource whose work something undoes at once: every
// CheckApply takes a millisecond, changes something, logs it and gets an
// event right away, until calm is set.
type fighter struct {
	rt    *engine.Runtime
	calm  atomic.Bool // runs find it in state
	truce atomic.Bool // runs change it, but nothing undoes that
	runs  atomic.Int32
}

func (f *fighter) Validate() error                 { return nil }
func (f *fighter) Init(rt *engine.Runtime) error   { f.rt = rt; return nil }
func (f *fighter) Cleanup() error                  { return nil }
func (f *fighter) Watch(ctx context.Context) error { f.rt.Running(); <-ctx.Done(); return nil }

func (f *fighter) CheckApply(ctx context.Context, apply bool) (bool, error) {
	f.runs.Add(1)
	time.Sleep(time.Millisecond)
	if f.calm.Load() {
		return true, nil
	}
	f.rt.Logger.Info("rewrote the file")
	if !f.truce.Load() {
		f.rt.Event() // undone at once
	}
	return false, nil
}

// Issue 9, item 2: two resources rewriting each other logged thousands of
// lines a second. A vertex that changes something on every run many times
// a second is reported once, at warning, with its rate; its per-run lines
// (the engine's and the resource's) go to debug until it settles.
func TestFlappingVertexIsReportedOnceNotThousandsOfTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogCapture()
		f := &fighter{}
		g := engine.NewGraph("g")
		must(t, g.AddVertex(engine.Vertex{ID: id("fight"), Res: f}))
		r := start(t, g, func(c *engineConfig) { c.Logger = slogOf(logs) })
		advance(3 * time.Second)
		if n := f.runs.Load(); n < 2000 {
			t.Fatalf("got %d runs in 3 s, want a vertex that flaps at about 1000/s", n)
		}
		warns := logs.records("changes something on every run")
		if len(warns) != 1 || warns[0].level != slog.LevelWarn {
			t.Fatalf("got %d flapping records (%+v), want one warning", len(warns), warns)
		}
		rate, _ := strconv.Atoi(warns[0].attrs["changes_per_second"])
		if rate < 500 || rate > 1000 {
			t.Errorf("reported %d changes per second, want about 1000", rate)
		}
		for _, msg := range []string{"resource applied", "rewrote the file"} {
			info, debug := 0, 0
			for _, rec := range logs.records(msg) {
				switch rec.level {
				case slog.LevelInfo:
					info++
				case slog.LevelDebug:
					debug++
				}
			}
			if info > 11 || debug < 1000 { // the resource logs its 11th change before the engine counts it
				t.Errorf("%q: %d lines at info and %d at debug, want at most 11 at info", msg, info, debug)
			}
		}

		f.calm.Store(true)
		advance(time.Second)
		settled := logs.records("settled after flapping")
		if len(settled) != 1 {
			t.Fatalf("got %d settled records, want 1", len(settled))
		}
		f.calm.Store(false)
		f.rt.Event()
		advance(5 * time.Millisecond)
		if got := logs.records("rewrote the file"); got[len(got)-1].level != slog.LevelInfo {
			t.Error("a settled vertex's lines stayed at debug")
		}
		f.calm.Store(true)
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A vertex that changes something a few times a second is not flapping.
func TestSlowlyChangingVertexIsNotReportedAsFlapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogCapture()
		rec := newRecorder()
		a := newFake(rec, "a")
		a.result = changes
		start(t, graphOf(t, []*fake{a}), func(c *engineConfig) { c.Logger = slogOf(logs) })
		for range 30 {
			advance(200 * time.Millisecond)
			a.event()
		}
		synctest.Wait()
		if got := logs.records("changes something on every run"); len(got) != 0 {
			t.Errorf("got %+v, want no flapping report at 5 changes a second", got)
		}
		for _, rec := range logs.records("resource applied") {
			if rec.level != slog.LevelInfo {
				t.Fatalf("a per-run line went to %v", rec.level)
			}
		}
	})
}

// Flap damping ends when a fight ends, even if its last run changed
// something: the next change, however much later, is logged at info and
// the settling is reported.
func TestFlapDampingEndsWhenTheFightStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogCapture()
		f := &fighter{}
		g := engine.NewGraph("g")
		must(t, g.AddVertex(engine.Vertex{ID: id("fight"), Res: f}))
		r := start(t, g, func(c *engineConfig) { c.Logger = slogOf(logs) })
		advance(2*time.Second + 500*time.Millisecond) // the truce comes mid-window
		if len(logs.records("changes something on every run")) != 1 {
			t.Fatal("the vertex did not flap")
		}
		f.truce.Store(true) // its last write sticks: no more events
		advance(time.Hour)
		f.rt.Event() // a real change, an hour later
		advance(5 * time.Millisecond)
		got := logs.records("resource applied")
		if last := got[len(got)-1]; last.level != slog.LevelInfo {
			t.Errorf("a change an hour after the fight was logged at %v", last.level)
		}
		if len(logs.records("settled after flapping")) != 1 {
			t.Error("the end of the flapping was not reported")
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
