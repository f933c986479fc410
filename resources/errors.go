package resources

import "errors"

// ErrNeedsForce is wrapped by the errors of a file resource that would have
// to destroy something the graph does not declare (a directory's contents,
// or a file of another type) and has not been given force: true.
var ErrNeedsForce = errors.New("needs force: true")

// ErrLeftoverRunning is wrapped by the error of an exec resource whose
// command, started by an earlier run of the agent that was killed, is still
// running and could not be killed: graft does not run it a second time
// alongside the first.
var ErrLeftoverRunning = errors.New("a command started by an earlier run of the agent is still running")

// forceError is an error that asks for force: true.
type forceError struct{ msg string }

func (e *forceError) Error() string { return e.msg }
func (e *forceError) Unwrap() error { return ErrNeedsForce }
