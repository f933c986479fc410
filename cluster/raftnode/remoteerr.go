package raftnode

import (
	"errors"

	"github.com/graftcm/graft/cluster/transport"
)

// Codes of the node's sentinel errors in an RPC answer (Response.Kind):
// a write forwarded to a leader that fails there for one of them fails on
// the node that forwarded it with an error that errors.Is matches as it
// would on the leader. The codes are the wire's: never renumber one.
const (
	kindNone uint8 = iota
	kindNoSpace
	kindReadOnly
	kindDamagedState
)

// kindSentinel returns the sentinel error of a code, nil for 0 or a code
// this node does not know (an answer from another release, or garbage).
func kindSentinel(kind uint8) error {
	switch kind {
	case kindNoSpace:
		return ErrNoSpace
	case kindReadOnly:
		return ErrReadOnly
	case kindDamagedState:
		return ErrDamagedState
	}
	return nil
}

// errKind returns the code of the sentinel err wraps, kindNone if none.
func errKind(err error) uint8 {
	for _, k := range []uint8{kindNoSpace, kindReadOnly, kindDamagedState} {
		if errors.Is(err, kindSentinel(k)) {
			return k
		}
	}
	return kindNone
}

// failed answers an RPC that failed with err, carrying its sentinel's code.
func failed(err error) *transport.Response {
	return &transport.Response{Code: transport.CodeFailed, Err: err.Error(), Kind: errKind(err)}
}

// remoteError is a failure another node reported: its text, matched by
// errors.Is as the sentinel its code names.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// remoteErr returns an error saying msg that wraps the sentinel kind names;
// a plain error if it names none this node knows.
func remoteErr(kind uint8, msg string) error {
	if s := kindSentinel(kind); s != nil {
		return &remoteError{msg: msg, sentinel: s}
	}
	return errors.New(msg)
}
