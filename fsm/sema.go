package fsm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/graftcm/graft/internal/msgpackcheck"
)

// slotTokenSize bounds what granting a waiter adds to an encoded
// SemaState: the "t" field and its uint64.
const slotTokenSize = 11

func (a *applier) acquire(c *Command) (granted bool, token uint64, err error) {
	if err := checkSlotCommand(c); err != nil {
		return false, 0, err
	}
	if c.Count < 1 {
		return false, 0, fmt.Errorf("count is %d, must be at least 1", c.Count)
	}
	key := SemaPrefix + c.Sema
	st, ok, err := a.sema(key)
	if err != nil {
		return false, 0, err
	}
	if ok && st.Count != c.Count {
		return false, 0, fmt.Errorf("semaphore %q has count %d, not %d", c.Sema, st.Count, c.Count)
	}
	st.Count = c.Count
	for _, s := range st.Holders {
		if s.Node == c.Node && s.Holder == c.Holder {
			return true, s.Token, nil
		}
	}
	for _, s := range st.Waiters {
		if s.Node == c.Node && s.Holder == c.Holder {
			return false, 0, nil
		}
	}
	slot := Slot{Node: c.Node, Holder: c.Holder}
	granted = int64(len(st.Holders)) < st.Count
	if granted {
		slot.Token = a.peekToken()
		st.Holders = append(st.Holders, slot)
	} else {
		st.Waiters = append(st.Waiters, slot)
	}
	value, err := encodeSema(st)
	if err != nil {
		return false, 0, err
	}
	if n := len(value) + slotTokenSize*len(st.Waiters); n > MaxValueSize {
		return false, 0, fmt.Errorf("semaphore %q would be %d bytes, max %d: %w", c.Sema, n, MaxValueSize, ErrTooLarge)
	}
	if granted {
		a.takeToken()
	}
	a.put(key, value, "")
	return granted, slot.Token, nil
}

func (a *applier) release(c *Command) error {
	if err := checkSlotCommand(c); err != nil {
		return err
	}
	key := SemaPrefix + c.Sema
	st, ok, err := a.sema(key)
	if err != nil || !ok {
		return err
	}
	mine := func(s Slot) bool { return s.Node == c.Node && s.Holder == c.Holder }
	if !removeSlots(&st, mine) {
		return nil
	}
	return a.storeSema(key, st)
}

// semaUpdate is a semaphore's state to store under key.
type semaUpdate struct {
	key string
	st  SemaState
}

// nodeSemas returns the semaphores node holds or waits for, with its slots
// and queue places removed (storeSema then grants and stores them).
func (a *applier) nodeSemas(node string) ([]semaUpdate, error) {
	var out []semaUpdate
	var err error
	a.f.tree.AscendGreaterOrEqual(KV{Key: SemaPrefix}, func(kv KV) bool {
		if !strings.HasPrefix(kv.Key, SemaPrefix) {
			return false
		}
		var st SemaState
		if st, err = decodeSema(kv.Value); err != nil {
			err = fmt.Errorf("%s: %w", kv.Key, err)
			return false
		}
		if removeSlots(&st, func(s Slot) bool { return s.Node == node }) {
			out = append(out, semaUpdate{kv.Key, st})
		}
		return true
	})
	return out, err
}

// removeSlots removes the holders and waiters gone reports, and whether
// there were any.
func removeSlots(st *SemaState, gone func(Slot) bool) bool {
	n := len(st.Holders) + len(st.Waiters)
	keep := func(slots []Slot) []Slot {
		var out []Slot
		for _, s := range slots {
			if !gone(s) {
				out = append(out, s)
			}
		}
		return out
	}
	st.Holders, st.Waiters = keep(st.Holders), keep(st.Waiters)
	return len(st.Holders)+len(st.Waiters) != n
}

// storeSema grants free slots to the first waiters, then stores the state,
// or deletes it when nobody holds or waits.
func (a *applier) storeSema(key string, st SemaState) error {
	for int64(len(st.Holders)) < st.Count && len(st.Waiters) > 0 {
		w := st.Waiters[0]
		st.Waiters = st.Waiters[1:]
		w.Token = a.takeToken()
		st.Holders = append(st.Holders, w)
	}
	if len(st.Holders) == 0 && len(st.Waiters) == 0 {
		a.delete(key)
		return nil
	}
	value, err := encodeSema(st)
	if err != nil {
		return err
	}
	a.put(key, value, "")
	return nil
}

// peekToken returns the next fencing token; takeToken also uses it up.
func (a *applier) peekToken() uint64 { return max(a.index, a.f.token+1) }

func (a *applier) takeToken() uint64 {
	a.f.token = a.peekToken()
	return a.f.token
}

// sema reads the state stored under key.
func (a *applier) sema(key string) (SemaState, bool, error) {
	kv, ok := a.f.tree.Get(KV{Key: key})
	if !ok {
		return SemaState{}, false, nil
	}
	st, err := decodeSema(kv.Value)
	if err != nil {
		return SemaState{}, false, fmt.Errorf("%s: %w", key, err)
	}
	return st, true, nil
}

func checkSlotCommand(c *Command) error {
	if c.Sema == "" {
		return errors.New("sema is empty")
	}
	if err := checkNode(c.Node); err != nil {
		return err
	}
	if c.Holder == "" {
		return errors.New("holder is empty")
	}
	return nil
}

func encodeSema(st SemaState) ([]byte, error) {
	if len(st.Holders) == 0 {
		st.Holders = nil
	}
	if len(st.Waiters) == 0 {
		st.Waiters = nil
	}
	b, err := msgpack.Marshal(&st)
	if err != nil {
		return nil, fmt.Errorf("encode semaphore: %w", err)
	}
	return b, nil
}

// decodeSema decodes and checks a stored SemaState.
func decodeSema(b []byte) (SemaState, error) {
	var st SemaState
	if err := msgpackcheck.Check(b); err != nil {
		return SemaState{}, fmt.Errorf("decode semaphore: %w", err)
	}
	if err := msgpack.Unmarshal(b, &st); err != nil {
		return SemaState{}, fmt.Errorf("decode semaphore: %w", err)
	}
	if err := checkSema(&st); err != nil {
		return SemaState{}, fmt.Errorf("bad semaphore: %w", err)
	}
	return st, nil
}

func checkSema(st *SemaState) error {
	switch {
	case st.Count < 1 || st.Count > MaxSemaCount:
		return fmt.Errorf("count %d out of range", st.Count)
	case len(st.Holders)+len(st.Waiters) == 0:
		return errors.New("no holders and no waiters")
	case int64(len(st.Holders)) > st.Count:
		return fmt.Errorf("%d holders, count %d", len(st.Holders), st.Count)
	case int64(len(st.Holders)) < st.Count && len(st.Waiters) > 0:
		return errors.New("waiters while slots are free")
	}
	type id struct{ node, holder string }
	seen := make(map[id]bool, len(st.Holders)+len(st.Waiters))
	for i, s := range append(st.Holders[:len(st.Holders):len(st.Holders)], st.Waiters...) {
		holder := i < len(st.Holders)
		switch {
		case checkNode(s.Node) != nil || s.Holder == "":
			return fmt.Errorf("slot %d: bad node %q or holder %q", i, s.Node, s.Holder)
		case holder && s.Token == 0, !holder && s.Token != 0:
			return fmt.Errorf("slot %d: token %d", i, s.Token)
		case seen[id{s.Node, s.Holder}]:
			return fmt.Errorf("slot %d: %s/%s appears twice", i, s.Node, s.Holder)
		}
		seen[id{s.Node, s.Holder}] = true
	}
	return nil
}
