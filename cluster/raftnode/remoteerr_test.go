package raftnode

import (
	"errors"
	"fmt"
	"testing"
)

// A sentinel error crosses the RPC as its code: the caller's errors.Is
// matches it, with the remote text; a code the caller does not know (a
// newer release's, or garbage) is a plain error with that text.
func TestRemoteErrorKeepsKnownSentinelsAndNothingElse(t *testing.T) {
	for _, sentinel := range []error{ErrNoSpace, ErrReadOnly, ErrDamagedState} {
		resp := failed(fmt.Errorf("%w: the leader's words", sentinel))
		err := remoteErr(resp.Kind, resp.Err)
		if !errors.Is(err, sentinel) || err.Error() != resp.Err {
			t.Errorf("%v crossed as %q (kind %d), errors.Is %v", sentinel, err, resp.Kind, errors.Is(err, sentinel))
		}
	}
	if resp := failed(errors.New("disk on fire")); resp.Kind != kindNone {
		t.Errorf("an error of no sentinel crosses with kind %d", resp.Kind)
	}
	for _, kind := range []uint8{kindNone, kindDamagedState + 1, 255} {
		err := remoteErr(kind, "words")
		if err.Error() != "words" || errors.Unwrap(err) != nil {
			t.Errorf("kind %d: %q wraps %v, want a plain error", kind, err, errors.Unwrap(err))
		}
	}
}
