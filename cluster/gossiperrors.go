package cluster

import (
	"errors"
	"strings"
	"syscall"
)

// ErrGossipPortInUse is matched by the error of a node whose gossip port
// another process holds (another agent, say). The error also matches
// syscall.EADDRINUSE.
var ErrGossipPortInUse = errors.New("cluster: the gossip port is in use")

// ErrNoAdvertiseAddr is matched by the error of a node that found no
// address of its own to tell other nodes (no private IP address, and
// none given to advertise).
var ErrNoAdvertiseAddr = errors.New("cluster: no address to advertise to other nodes")

// gossipError is an error of memberlist's, classified.
type gossipError struct {
	err  error
	kind error // ErrGossipPortInUse or ErrNoAdvertiseAddr
}

func (e *gossipError) Error() string { return e.err.Error() }
func (e *gossipError) Unwrap() error { return e.err }

// Is matches the error's kind, and a port in use matches
// syscall.EADDRINUSE as the cluster port's error does.
func (e *gossipError) Is(target error) bool {
	return target == e.kind || (e.kind == ErrGossipPortInUse && target == syscall.EADDRINUSE)
}

// classifyGossipError gives memberlist's errors, which it flattens to
// text, the sentinels callers can match: this is the one place that reads
// their text.
func classifyGossipError(err error) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, "address already in use"):
		return &gossipError{err: err, kind: ErrGossipPortInUse}
	case strings.Contains(msg, "no private IP address found"):
		return &gossipError{err: err, kind: ErrNoAdvertiseAddr}
	}
	return err
}
