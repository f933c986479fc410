// Package faultcheck judges histories recorded while a graft cluster ran
// under faults (kills, partitions, restarts), and says what broke:
//
//   - Linearizable: every key's puts, gets, deletes and compare-and-swaps,
//     checked with porcupine against a sequential model of the World's
//     keys;
//   - Semaphores: never more holders of a cluster semaphore at once than
//     its count, fencing tokens that grow with real time, and a killed
//     holder's slots freed within a bound;
//   - Watch: every watcher saw every committed change of its prefix, in
//     revision order, once, or a resync whose state matches the
//     committed one;
//   - Durable: every acknowledged write is still there after recovery,
//     unless a later write of the same key replaced it.
//
// The checkers know nothing of how the history was recorded: times are
// any clock on which an operation that returned before another was called
// has the smaller times (a counter bumped at every call and return will
// do), and an operation whose outcome is unknown (it timed out, its node
// died) is given the return time Unknown, so that it may or may not have
// taken effect. An operation known not to have taken effect (refused
// before it reached a leader) is left out of the history. Each checker
// returns nil or a *Violation naming what broke and the part of the
// history that shows it.
//
// A Recorder collects such a history from a suite's clients and watchers
// as they run, on the clock and with the rule for calls that never took
// effect that the suite gives it, and runs the checkers on it.
package faultcheck

import (
	"fmt"
	"strings"
)

// Violation is what a checker found wrong.
type Violation struct {
	// Checker is the checker that found it ("linearizable", "semaphore",
	// "watch", "durable").
	Checker string
	// What says what is wrong.
	What string
	// History is the part of the history that shows it, one operation a
	// line.
	History []string
}

func (v *Violation) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", v.Checker, v.What)
	for _, h := range v.History {
		b.WriteString("\n    ")
		b.WriteString(h)
	}
	return b.String()
}
