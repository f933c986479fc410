package resources

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/graftcm/graft/engine"
)

// Timer ticks every Interval seconds. A tick counts as work: the CheckApply
// after a tick reports a change, so notify edges out of the timer deliver a
// refresh to their children (an exec that runs every N seconds, say). A
// refresh delivered to the timer restarts its interval.
type Timer struct {
	// Interval is the number of seconds between ticks. It must be positive.
	Interval uint32 `yaml:"interval"`

	rt    *engine.Runtime
	ticks atomic.Int64
	reset chan struct{}
}

// Validate requires a positive interval.
func (t *Timer) Validate() error {
	if t.Interval == 0 {
		return engine.ParamErrorf("interval", "must be at least 1 second")
	}
	return nil
}

// Init keeps the runtime.
func (t *Timer) Init(rt *engine.Runtime) error {
	t.rt = rt
	t.reset = make(chan struct{}, 1)
	return nil
}

// Cleanup does nothing.
func (t *Timer) Cleanup() error { return nil }

// Watch emits an event every interval.
func (t *Timer) Watch(ctx context.Context) error {
	d := time.Duration(t.Interval) * time.Second
	tick := time.NewTicker(d)
	defer tick.Stop()
	t.rt.Running()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.ticks.Add(1)
			t.rt.Event()
		case <-t.reset:
			tick.Reset(d)
		}
	}
}

// CheckApply reports a change once per tick, and restarts the interval on a
// refresh.
func (t *Timer) CheckApply(_ context.Context, apply bool) (bool, error) {
	ticked := t.ticks.Swap(0) > 0
	if t.rt.Refresh() && apply {
		t.rt.Logger.Info("refresh: restarting the interval")
		select {
		case t.reset <- struct{}{}:
		default:
		}
		return false, nil
	}
	if ticked {
		t.rt.Logger.Debug("tick")
		return false, nil
	}
	return true, nil
}
