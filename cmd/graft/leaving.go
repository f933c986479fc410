package main

import (
	"context"
	"errors"
	"sync"
)

// errStoppedWithoutLeaving is the leave outcome of an agent that stopped
// without trying to leave: its engine failed, or a second signal stopped
// it.
var errStoppedWithoutLeaving = errors.New("the agent stopped without leaving its cluster (it failed, or a second signal stopped it)")

// leaveOutcome is how the agent's graceful leave went, set once when the
// agent stops and waited for by the local API's leave requests.
type leaveOutcome struct {
	once sync.Once
	done chan struct{}
	err  error // written once, before done closes
}

func newLeaveOutcome() *leaveOutcome { return &leaveOutcome{done: make(chan struct{})} }

// set records the outcome; later calls change nothing.
func (o *leaveOutcome) set(err error) {
	o.once.Do(func() {
		o.err = err
		close(o.done)
	})
}

// wait returns the outcome once it is known, or ctx's error: the outcome
// if both are (the API that waits closes once the outcome is set).
func (o *leaveOutcome) wait(ctx context.Context) error {
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
	}
	select {
	case <-o.done:
		return o.err
	default:
		return ctx.Err()
	}
}
