package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// applier applies the commands of one log entry. Its methods run with f.mu
// held. Each command is checked in full before it changes anything, so an
// invalid command changes nothing and a transaction is all-or-nothing.
type applier struct {
	f     *FSM
	index uint64
}

// entry applies the commands of an entry appended in term: each group
// an OpFence opens applies only if the fence holds.
func (a *applier) entry(cmds []Command, term uint64) Applied {
	out := Applied{Results: make([]Result, len(cmds))}
	guarded, skip := -1, false // the open group's index in out.Requests
	for i := range cmds {
		c := &cmds[i]
		switch {
		case c.Op == OpFence:
			holds := c.Term != 0 && c.Term == term
			out.Results[i] = Result{Rev: a.f.rev, OK: holds}
			out.Requests = append(out.Requests, Request{ID: c.Request, Applied: holds})
			guarded, skip = len(out.Requests)-1, !holds
			continue
		case skip:
			out.Results[i] = Result{Rev: a.f.rev, Err: ErrFenced}
		default:
			out.Results[i] = a.command(c)
		}
		if guarded >= 0 {
			r := &out.Requests[guarded]
			r.Results = append(r.Results, out.Results[i])
		}
	}
	return out
}

func (a *applier) command(c *Command) Result {
	var res Result
	var err error
	switch c.Op {
	case OpPut, OpDelete, OpDeletePrefix:
		if err = checkWrite(c); err == nil {
			a.write(c)
		}
	case OpTxn:
		res.OK, err = a.txn(c)
	case OpExportSet:
		err = a.exportSet(c)
	case OpSemaAcquire:
		res.Granted, res.Token, err = a.acquire(c)
	case OpSemaRelease:
		err = a.release(c)
	case OpExpireNode, OpRemoveNode:
		err = a.expireNode(c)
	default:
		err = fmt.Errorf("unknown op %d", c.Op)
	}
	if err != nil {
		res.Err = err.Error()
	}
	res.Rev = a.f.rev
	return res
}

// checkWrite checks a put, delete or delete-prefix.
func checkWrite(c *Command) error {
	if len(c.Compares) > 0 || len(c.Then) > 0 || len(c.Else) > 0 {
		return errors.New("compares, then and else are for transactions only")
	}
	if c.Op == OpDeletePrefix {
		for _, p := range [...]string{SemaPrefix, ExportPrefix} {
			if strings.HasPrefix(c.Key, p) || strings.HasPrefix(p, c.Key) {
				return fmt.Errorf("prefix %q covers reserved prefix %q", c.Key, p)
			}
		}
		return nil
	}
	if c.Key == "" {
		return errors.New("key is empty")
	}
	if err := checkReserved(c.Key); err != nil {
		return err
	}
	if c.Op == OpPut && c.Ephemeral {
		return checkNode(c.Node)
	}
	return nil
}

func checkReserved(key string) error {
	for _, p := range [...]string{SemaPrefix, ExportPrefix} {
		if strings.HasPrefix(key, p) {
			return fmt.Errorf("key %q is under reserved prefix %q", key, p)
		}
	}
	return nil
}

func checkNode(node string) error {
	if node == "" {
		return errors.New("node is empty")
	}
	if strings.Contains(node, "/") {
		return fmt.Errorf("node %q contains '/'", node)
	}
	return nil
}

// write applies a checked put, delete or delete-prefix.
func (a *applier) write(c *Command) {
	switch c.Op {
	case OpPut:
		owner := ""
		if c.Ephemeral {
			owner = c.Node
		}
		a.put(c.Key, c.Value, owner)
	case OpDelete:
		a.delete(c.Key)
	case OpDeletePrefix:
		for _, key := range a.keys(c.Key) {
			a.delete(key)
		}
	}
}

// put sets key to value, owned by owner (empty: by no node). A put that
// changes neither value nor owner does nothing.
func (a *applier) put(key string, value []byte, owner string) {
	f := a.f
	old, ok := f.tree.Get(KV{Key: key})
	if ok && bytes.Equal(old.Value, value) && old.Owner == owner {
		return
	}
	if len(value) == 0 {
		value = nil
	}
	kv := KV{Key: key, Value: value, CreateRev: a.index, ModRev: a.index, Version: 1, Owner: owner}
	if ok {
		kv.CreateRev, kv.Version = old.CreateRev, old.Version+1
		if old.Owner != "" && old.Owner != owner {
			f.owned.Delete(ownedKey{old.Owner, key})
		}
	}
	if owner != "" {
		f.owned.ReplaceOrInsert(ownedKey{owner, key})
	}
	f.tree.ReplaceOrInsert(kv)
	a.emit(Event{Type: EventPut, KV: kv})
}

// delete deletes key, if it exists.
func (a *applier) delete(key string) {
	f := a.f
	old, ok := f.tree.Delete(KV{Key: key})
	if !ok {
		return
	}
	if old.Owner != "" {
		f.owned.Delete(ownedKey{old.Owner, key})
	}
	old.ModRev = a.index
	a.emit(Event{Type: EventDelete, KV: old})
}

func (a *applier) emit(e Event) {
	a.f.rev = a.index
	a.f.hist.add(e)
}

// keys returns the keys starting with prefix, sorted.
func (a *applier) keys(prefix string) []string {
	var keys []string
	a.f.tree.AscendGreaterOrEqual(KV{Key: prefix}, func(kv KV) bool {
		if !strings.HasPrefix(kv.Key, prefix) {
			return false
		}
		keys = append(keys, kv.Key)
		return true
	})
	return keys
}

func (a *applier) txn(c *Command) (bool, error) {
	if len(c.Exports) > 0 {
		return false, errors.New("exports are for export sets only")
	}
	for i, cmp := range c.Compares {
		if cmp.Target < CompareValue || cmp.Target > CompareAbsent {
			return false, fmt.Errorf("compare %d: unknown target %d", i, cmp.Target)
		}
		if cmp.Key == "" {
			return false, fmt.Errorf("compare %d: key is empty", i)
		}
	}
	for _, b := range [...]struct {
		what string
		cmds []Command
	}{{"then", c.Then}, {"else", c.Else}} {
		for i := range b.cmds {
			op := &b.cmds[i]
			if op.Op != OpPut && op.Op != OpDelete && op.Op != OpDeletePrefix {
				return false, fmt.Errorf("%s %d: op %d not allowed in a transaction", b.what, i, op.Op)
			}
			if err := checkWrite(op); err != nil {
				return false, fmt.Errorf("%s %d: %w", b.what, i, err)
			}
		}
	}
	ok := true
	for _, cmp := range c.Compares {
		if !a.holds(cmp) {
			ok = false
			break
		}
	}
	branch := c.Then
	if !ok {
		branch = c.Else
	}
	for i := range branch {
		a.write(&branch[i])
	}
	return ok, nil
}

func (a *applier) holds(cmp Compare) bool {
	kv, ok := a.f.tree.Get(KV{Key: cmp.Key})
	switch cmp.Target {
	case CompareValue:
		return ok && bytes.Equal(kv.Value, cmp.Value)
	case CompareModRev:
		return kv.ModRev == cmp.Rev // zero when absent
	case CompareExists:
		return ok
	default: // CompareAbsent
		return !ok
	}
}

// exportKey is the key of a resource node exports.
func exportKey(node, kind, name string) string {
	return ExportPrefix + node + "/" + kind + "/" + name
}

func (a *applier) exportSet(c *Command) error {
	if err := checkNode(c.Node); err != nil {
		return err
	}
	type entry struct {
		key  string
		data []byte
	}
	want := make([]entry, len(c.Exports))
	for i, x := range c.Exports {
		switch {
		case x.Kind == "":
			return fmt.Errorf("export %d: kind is empty", i)
		case strings.Contains(x.Kind, "/"):
			return fmt.Errorf("export %d: kind %q contains '/'", i, x.Kind)
		case x.Name == "":
			return fmt.Errorf("export %d: name is empty", i)
		}
		want[i] = entry{exportKey(c.Node, x.Kind, x.Name), x.Data}
	}
	sort.Slice(want, func(i, j int) bool { return want[i].key < want[j].key })
	for i := 1; i < len(want); i++ {
		if want[i].key == want[i-1].key {
			return fmt.Errorf("export %q appears twice", strings.TrimPrefix(want[i].key, ExportPrefix+c.Node+"/"))
		}
	}
	// Merge the sorted old keys with the sorted new ones.
	have := a.keys(ExportPrefix + c.Node + "/")
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		switch {
		case j == len(want) || (i < len(have) && have[i] < want[j].key):
			a.delete(have[i])
			i++
		default:
			if i < len(have) && have[i] == want[j].key {
				i++
			}
			a.put(want[j].key, want[j].data, "")
			j++
		}
	}
	return nil
}

// expireNode applies OpExpireNode and OpRemoveNode.
func (a *applier) expireNode(c *Command) error {
	if err := checkNode(c.Node); err != nil {
		return err
	}
	semas, err := a.nodeSemas(c.Node)
	if err != nil {
		return err
	}
	var keys []string
	a.f.owned.AscendGreaterOrEqual(ownedKey{owner: c.Node}, func(k ownedKey) bool {
		if k.owner != c.Node {
			return false
		}
		keys = append(keys, k.key)
		return true
	})
	for _, key := range keys {
		a.delete(key)
	}
	for _, s := range semas {
		if err := a.storeSema(s.key, s.st); err != nil {
			return err
		}
	}
	if c.Op == OpRemoveNode {
		for _, key := range a.keys(ExportPrefix + c.Node + "/") {
			a.delete(key)
		}
	}
	return nil
}
