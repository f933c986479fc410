package engine

import "time"

// converger tracks the engine's converged state: converged once the graph is
// idle and nothing has changed for the timeout. It is owned by the scheduler
// goroutine.
type converger struct {
	timeout    time.Duration // < 0: off
	notify     func(Status)
	converged  bool
	lastChange time.Time
	started    bool // a graph has been swapped in
	t          *time.Timer
	armed      bool
}

func newConverger(timeout time.Duration, notify func(Status)) converger {
	return converger{timeout: timeout, notify: notify}
}

// changed records that something changed (a CheckApply changed or failed, or
// a graph was swapped in), which restarts the countdown.
func (c *converger) changed(now time.Time) {
	c.started = true
	c.lastChange = now
	if c.converged {
		c.converged = false
		if c.notify != nil {
			c.notify(Status{Converged: false})
		}
	}
}

// check declares convergence if the graph is idle and the timeout has passed
// since the last change, or arms the timer for when it will have. report
// fills in the rest of the Status.
func (c *converger) check(now time.Time, idle bool, report func() Status) {
	if c.timeout < 0 || !c.started || c.converged {
		c.disarm()
		return
	}
	if !idle {
		c.disarm()
		return
	}
	due := c.lastChange.Add(c.timeout)
	if wait := due.Sub(now); wait > 0 {
		if c.t == nil {
			c.t = time.NewTimer(wait)
		} else {
			c.t.Reset(wait)
		}
		c.armed = true
		return
	}
	c.disarm()
	c.converged = true
	if c.notify != nil {
		st := report()
		st.Converged = true
		c.notify(st)
	}
}

func (c *converger) disarm() {
	if c.armed {
		c.t.Stop()
		c.armed = false
	}
}

// timer returns the channel that fires when the countdown ends, or nil.
func (c *converger) timer() <-chan time.Time {
	if !c.armed {
		return nil
	}
	return c.t.C
}
