package faultcheck

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func hold(c int, count int64, token uint64, call, from, to int64) Hold {
	return Hold{Client: c, Sema: "s", Count: count, Token: token, Call: call, From: from, To: to}
}

// Holds that take turns, share a count of two, or were lost before the
// next holder got the slot pass.
func TestSemaphoresAcceptLegalHolds(t *testing.T) {
	lost := hold(1, 1, 20, 6, 7, 9)
	lost.Lost = true
	for name, hs := range map[string][]Hold{
		"turns":           {hold(0, 1, 10, 1, 2, 5), hold(1, 1, 12, 3, 6, 8), hold(2, 1, 14, 4, 9, Unknown)},
		"two of two":      {hold(0, 2, 10, 1, 2, 9), hold(1, 2, 11, 1, 3, 9), hold(2, 2, 15, 4, 10, 12)},
		"lost, then next": {hold(0, 1, 10, 1, 2, 5), lost, hold(2, 1, 21, 8, 10, 11)},
		"other semaphore": {hold(0, 1, 10, 1, 2, 5), {Client: 1, Sema: "t", Count: 1, Token: 11, Call: 1, From: 3, To: 4}},
	} {
		if err := Semaphores(hs); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A slot held by two at once (a double grant, or a holder that kept
// using a slot after it was given to another), a token granted twice, and
// a token smaller than one granted before the acquire began are flagged.
func TestSemaphoresFlagDoubleGrantsAndShrinkingTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		hs   []Hold
		want string
	}{
		{"double grant", []Hold{hold(0, 1, 10, 1, 2, 6), hold(1, 1, 12, 3, 4, 8)}, "2 holders at once"},
		{"three of two", []Hold{hold(0, 2, 10, 1, 2, 9), hold(1, 2, 11, 1, 3, 9), hold(2, 2, 12, 1, 4, 9)}, "3 holders at once"},
		{"held on after lost", []Hold{hold(0, 1, 10, 1, 2, Unknown), hold(1, 1, 12, 3, 6, 8)}, "2 holders at once"},
		{"token twice", []Hold{hold(0, 1, 10, 1, 2, 3), hold(1, 1, 10, 4, 5, 6)}, "token 10 granted twice"},
		{"token went down", []Hold{hold(0, 1, 10, 1, 2, 3), hold(1, 1, 9, 4, 5, 6)}, "token 9 granted after token 10"},
	} {
		err := Semaphores(tc.hs)
		var v *Violation
		if !errors.As(err, &v) || !strings.Contains(v.What, tc.want) {
			t.Errorf("%s: %v, want a violation saying %q", tc.name, err, tc.want)
		}
	}
}

// A killed holder's slots freed within the bound (of the kill, or of the
// others' first commit after it) pass, as does a kill after which the
// others committed nothing; freed late, or never while watched, they are
// flagged.
func TestReleasedFlagsSlotsFreedLateOrNever(t *testing.T) {
	const bound = time.Second
	ok := []Kill{{Node: "a", Tokens: []uint64{3}, Freed: true, After: 600 * time.Millisecond}, {Node: "b", Freed: true},
		{Node: "c", Tokens: []uint64{4}, Freed: true, After: 1500 * time.Millisecond, Stalled: 800 * time.Millisecond},
		{Node: "d", Tokens: []uint64{5}, After: 1500 * time.Millisecond, Stalled: 1500 * time.Millisecond}}
	if err := Released(ok, bound); err != nil {
		t.Errorf("freed in time: %v", err)
	}
	for name, k := range map[string]Kill{
		"late":                  {Node: "a", Tokens: []uint64{3}, Freed: true, After: 1500 * time.Millisecond},
		"late after the stall":  {Node: "a", Tokens: []uint64{3}, Freed: true, After: 2500 * time.Millisecond, Stalled: time.Second},
		"never":                 {Node: "a", Tokens: []uint64{3}, After: 3 * time.Second},
		"never after the stall": {Node: "a", Tokens: []uint64{3}, After: 3 * time.Second, Stalled: time.Second},
	} {
		var v *Violation
		if err := Released(append(ok, k), bound); !errors.As(err, &v) || !strings.Contains(v.What, "node a") {
			t.Errorf("%s: %v, want a violation naming node a", name, err)
		}
	}
}
