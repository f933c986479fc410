package transport

import (
	"context"
	"strings"
	"testing"
)

// Each request reaches the handler registered for its op; an op nobody
// registered fails, naming the op.
func TestHandlersRouteByOpAndFailUnknownOps(t *testing.T) {
	var hs Handlers
	if resp := hs.Serve(t.Context(), &Request{Op: OpStats}); resp.Code != CodeFailed || !strings.Contains(resp.Err, "unknown rpc op 3") {
		t.Errorf("a request to empty handlers: %+v, want failed, unknown op 3", resp)
	}
	answer := func(index uint64) Handler {
		return func(context.Context, *Request) *Response { return &Response{Code: CodeOK, Index: index} }
	}
	hs.Handle(OpStats, answer(1))
	hs.Handle(OpLeave, answer(2))
	for op, want := range map[uint8]uint64{OpStats: 1, OpLeave: 2} {
		if resp := hs.Serve(t.Context(), &Request{Op: op}); resp.Code != CodeOK || resp.Index != want {
			t.Errorf("op %d: %+v, want the answer of its handler (%d)", op, resp, want)
		}
	}
	if resp := hs.Serve(t.Context(), &Request{Op: OpApply}); resp.Code != CodeFailed {
		t.Errorf("an unregistered op: %+v, want failed", resp)
	}
}
