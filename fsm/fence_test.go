package fsm

import (
	"testing"
)

// applyIn applies cmds as one entry at the next index, appended in term.
func (h *harness) applyIn(term uint64, cmds ...Command) Applied {
	h.t.Helper()
	data, err := EncodeBatch(cmds)
	if err != nil {
		h.t.Fatalf("EncodeBatch: %v", err)
	}
	h.index++
	a, err := h.f.ApplyEntry(h.index, term, data, nil)
	if err != nil {
		h.t.Fatalf("ApplyEntry(%d): %v", h.index, err)
	}
	return a
}

func fence(term uint64, id string) Command { return Command{Op: OpFence, Term: term, Request: id} }

// A fenced group applies only in an entry of its term; groups of one
// entry are judged apart, and commands before the first fence always
// apply.
func TestFenceAppliesOnlyInItsTerm(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.applyIn(3,
		put("plain", "1"),
		fence(3, "r1"), put("a", "1"), put("b", "1"),
		fence(2, "r2"), put("c", "1"),
		fence(3, "r3"), put("d", "1"))
	if len(a.Results) != 8 {
		t.Fatalf("%d results for 8 commands", len(a.Results))
	}
	want := []struct {
		id      string
		applied bool
		n       int
	}{{"r1", true, 2}, {"r2", false, 1}, {"r3", true, 1}}
	if len(a.Requests) != len(want) {
		t.Fatalf("requests %+v", a.Requests)
	}
	for i, w := range want {
		r := a.Requests[i]
		if r.ID != w.id || r.Applied != w.applied || len(r.Results) != w.n {
			t.Errorf("request %d: %+v, want %s applied=%v with %d results", i, r, w.id, w.applied, w.n)
		}
	}
	if !a.Results[1].OK || a.Results[4].OK || a.Results[5].Err != ErrFenced {
		t.Errorf("results %+v", a.Results)
	}
	for key, want := range map[string]bool{"plain": true, "a": true, "b": true, "c": false, "d": true} {
		if _, ok := h.f.Get(key); ok != want {
			t.Errorf("key %s present %v, want %v", key, ok, want)
		}
	}
}

// A request sent for one term and appended in another (a leader that
// lost its term and won a later one, say) changes nothing, so a sender
// that saw it fail can send it again without applying it twice.
func TestFenceOfAnotherTermChangesNothing(t *testing.T) {
	h := newHarness(t, Options{})
	before := h.f.Rev()
	a := h.applyIn(5, fence(4, "late"), put("k", "v"), Command{Op: OpDelete, Key: "other"})
	if len(a.Requests) != 1 || a.Requests[0].Applied || a.Requests[0].Results[0].Err != ErrFenced {
		t.Fatalf("%+v", a)
	}
	if h.f.Rev() != before {
		t.Errorf("revision moved from %d to %d", before, h.f.Rev())
	}
	// Apply, which knows no term, never applies a fenced group.
	if res := h.apply(fence(5, "x"), put("k", "v")); res[0].OK || res[1].Err != ErrFenced {
		t.Errorf("Apply of a fenced group: %+v", res)
	}
}

// A sender waiting for an index and then looking for its request's
// outcome must find it: the outcome is settled before the entry counts as
// applied. (It was handed over after, so a forwarded write could be
// judged never applied, and sent again, right after it applied.)
func TestFenceOutcomeSettledBeforeAppliedMoves(t *testing.T) {
	h := newHarness(t, Options{})
	data, err := EncodeBatch([]Command{fence(2, "r"), put("k", "v")})
	if err != nil {
		t.Fatal(err)
	}
	var appliedWhenSettled uint64
	settled := false
	if _, err := h.f.ApplyEntry(1, 2, data, func(reqs []Request) {
		settled = len(reqs) == 1 && reqs[0].ID == "r" && reqs[0].Applied
		appliedWhenSettled = h.f.Applied()
	}); err != nil {
		t.Fatal(err)
	}
	if !settled || appliedWhenSettled != 0 {
		t.Errorf("settled %v with Applied at %d, want settled before Applied moves from 0", settled, appliedWhenSettled)
	}
}
