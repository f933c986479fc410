package faultcheck

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Unknown is the return time of an operation whose outcome is unknown: it
// may have taken effect at any time after its call, or never.
const Unknown int64 = math.MaxInt64

// Kind is what a KVOp does.
type Kind int

// The operations on keys, with the World's semantics.
const (
	// Put sets Key to Value.
	Put Kind = iota + 1
	// Get reads Key linearizably: Found and Got are what it read.
	Get
	// Delete deletes Key (deleting a missing key does nothing).
	Delete
	// CAS sets Key to Value if it holds Expect (ExpectAbsent: if it does
	// not exist); Swapped says whether it did.
	CAS
)

func (k Kind) String() string {
	switch k {
	case Put:
		return "put"
	case Get:
		return "get"
	case Delete:
		return "delete"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// KVOp is one operation on a key, as a client saw it.
type KVOp struct {
	Client int
	Kind   Kind
	Key    string
	// Value is what a put or a CAS writes.
	Value string
	// Expect is the value a CAS compares the key's with, unless
	// ExpectAbsent, when it wants the key not to exist.
	Expect       string
	ExpectAbsent bool
	// Call and Return are when the client called and when it got the
	// answer; Return is Unknown if it never learnt the outcome (then the
	// results below mean nothing).
	Call, Return int64
	// Found and Got are what a get read.
	Found bool
	Got   string
	// Swapped says whether a CAS swapped.
	Swapped bool
}

func (o KVOp) String() string {
	ret := fmt.Sprint(o.Return)
	if o.Return == Unknown {
		ret = "?"
	}
	s := fmt.Sprintf("client %d [%d,%s] %s %s", o.Client, o.Call, ret, o.Kind, o.Key)
	switch o.Kind {
	case Put:
		s += " " + o.Value
	case CAS:
		old := o.Expect
		if o.ExpectAbsent {
			old = "(absent)"
		}
		s += fmt.Sprintf(" %s->%s", old, o.Value)
	}
	switch {
	case o.Return == Unknown:
		s += ": outcome unknown"
	case o.Kind == Get && o.Found:
		s += ": " + o.Got
	case o.Kind == Get:
		s += ": (absent)"
	case o.Kind == CAS:
		s += fmt.Sprintf(": swapped=%v", o.Swapped)
	}
	return s
}

// keyState is the model's state of one key.
type keyState struct {
	exists bool
	value  string
}

func (s keyState) String() string {
	if !s.exists {
		return "(absent)"
	}
	return s.value
}

// step is the World's semantics for one key: whether op may return what
// it did in state s, and the state after it.
func step(s keyState, op KVOp) (bool, keyState) {
	unknown := op.Return == Unknown
	switch op.Kind {
	case Put:
		return true, keyState{exists: true, value: op.Value}
	case Delete:
		return true, keyState{}
	case CAS:
		holds := !s.exists
		if !op.ExpectAbsent {
			holds = s.exists && s.value == op.Expect
		}
		if !unknown && op.Swapped != holds {
			return false, s
		}
		if holds {
			return true, keyState{exists: true, value: op.Value}
		}
		return true, s
	case Get:
		if unknown {
			return true, s
		}
		return op.Found == s.exists && (!op.Found || op.Got == s.value), s
	}
	return false, s
}

// kvModel is one key's model for porcupine. Input and output are both the
// KVOp.
var kvModel = porcupine.Model{
	Init: func() interface{} { return keyState{} },
	Step: func(state, input, _ interface{}) (bool, interface{}) {
		return step(state.(keyState), input.(KVOp))
	},
	DescribeOperation: func(input, _ interface{}) string { return input.(KVOp).String() },
	DescribeState:     func(state interface{}) string { return state.(keyState).String() },
}

// Linearizable checks that the operations, grouped by key, are
// linearizable: each key's history could have happened one operation at
// a time, each at some instant between its call and its return, on a key
// that starts absent. Gets whose outcome is unknown tell nothing and are
// ignored. timeout bounds the search for each key (0: no bound); a key
// whose search ran out of time is reported too, as undecided.
func Linearizable(ops []KVOp, timeout time.Duration) error {
	byKey := map[string][]KVOp{}
	for _, op := range ops {
		if op.Kind == Get && op.Return == Unknown {
			continue
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := linearizableKey(k, byKey[k], timeout); err != nil {
			return err
		}
	}
	return nil
}

func linearizableKey(key string, ops []KVOp, timeout time.Duration) error {
	hist := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		hist[i] = porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: op.Call, Return: op.Return}
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, hist, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return &Violation{Checker: "linearizable", What: fmt.Sprintf("key %q: undecided after %v (%d operations)", key, timeout, len(ops))}
	}
	return &Violation{Checker: "linearizable",
		What:    fmt.Sprintf("key %q: no order of its %d operations explains what they returned", key, len(ops)),
		History: stuck(ops, info)}
}

// stuck describes where the search got stuck: the state after the longest
// order found, and the operations around the first one it could not
// place.
func stuck(ops []KVOp, info porcupine.LinearizationInfo) []string {
	var longest []int
	for _, p := range info.PartialLinearizations() {
		for _, l := range p {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	placed := make(map[int]bool, len(longest))
	s := keyState{}
	for _, id := range longest {
		placed[id] = true
		_, s = step(s, ops[id])
	}
	// The first operation that could not be placed is the unplaced one
	// that returned first.
	blocked := -1
	for i, op := range ops {
		if !placed[i] && (blocked < 0 || op.Return < ops[blocked].Return) {
			blocked = i
		}
	}
	if blocked < 0 {
		return nil
	}
	from := ops[blocked].Call
	for _, id := range longest[max(0, len(longest)-6):] {
		from = min(from, ops[id].Call)
	}
	to := ops[blocked].Return
	var window []KVOp
	for _, op := range ops {
		if op.Call <= to && op.Return >= from {
			window = append(window, op)
		}
	}
	slices.SortFunc(window, func(a, b KVOp) int { return cmp.Compare(a.Call, b.Call) })
	out := []string{fmt.Sprintf("after %d operations placed in order the key is %s; cannot place: %s", len(longest), s, ops[blocked])}
	for _, op := range window {
		out = append(out, op.String())
	}
	return out
}
