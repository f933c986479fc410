package faultcheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Change is one committed change of a key: at revision Rev, Key was set to
// Value, or deleted (Value is then what it held).
type Change struct {
	Rev     uint64
	Key     string
	Value   string
	Deleted bool
}

func (c Change) String() string {
	if c.Deleted {
		return fmt.Sprintf("@%d delete %s", c.Rev, c.Key)
	}
	return fmt.Sprintf("@%d put %s=%s", c.Rev, c.Key, c.Value)
}

// KV is a key's value and the revision it was last changed at.
type KV struct {
	Value  string
	ModRev uint64
}

// Delivery is one thing a watch delivered: the changes after the last
// delivery up to Rev, or a resync (State is then every key of the prefix
// at Rev).
type Delivery struct {
	Rev     uint64
	Changes []Change
	Resync  bool
	State   map[string]KV
}

func (d Delivery) String() string {
	if d.Resync {
		keys := slices.Sorted(maps.Keys(d.State))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s=%s@%d", k, d.State[k].Value, d.State[k].ModRev)
		}
		return fmt.Sprintf("resync @%d {%s}", d.Rev, strings.Join(parts, " "))
	}
	parts := make([]string, len(d.Changes))
	for i, c := range d.Changes {
		parts[i] = c.String()
	}
	return fmt.Sprintf("through @%d: %s", d.Rev, strings.Join(parts, ", "))
}

// WatchLog is what one watcher received.
type WatchLog struct {
	// Name says which watcher (its node, say).
	Name   string
	Prefix string
	// From is the revision it watched from: it must see every change
	// after it.
	From uint64
	// Until is the revision it must have seen every change of the
	// prefix up to by the end (0: nothing is required, as of a watcher
	// whose node died).
	Until      uint64
	Deliveries []Delivery
}

// Watch checks a watcher against the committed changes (every key's, in
// revision order): each delivery holds exactly the committed changes of
// the prefix after the previous one's revision up to its own, in order;
// a resync's state is the prefix's committed state at its revision, which
// is not behind what the watcher had seen; and the watcher got as far as
// Until.
func Watch(committed []Change, w WatchLog) error {
	at := w.From
	bad := func(i int, what string, want []Change) error {
		hist := []string{}
		for j := max(0, i-3); j <= i && j < len(w.Deliveries); j++ {
			hist = append(hist, fmt.Sprintf("delivery %d %s", j, w.Deliveries[j]))
		}
		for _, c := range want {
			hist = append(hist, "committed "+c.String())
		}
		return &Violation{Checker: "watch", What: fmt.Sprintf("watcher %s of %q from @%d: %s", w.Name, w.Prefix, w.From, what),
			History: hist}
	}
	for i, d := range w.Deliveries {
		if d.Rev < at {
			return bad(i, fmt.Sprintf("delivery %d goes back to @%d after @%d", i, d.Rev, at), nil)
		}
		if d.Resync {
			want := stateAt(committed, w.Prefix, d.Rev)
			if !maps.Equal(want, d.State) {
				return bad(i, fmt.Sprintf("resync %d at @%d does not hold the committed state %v", i, d.Rev, want), nil)
			}
			at = d.Rev
			continue
		}
		want := changesIn(committed, w.Prefix, at, d.Rev)
		if !slices.Equal(want, d.Changes) {
			return bad(i, fmt.Sprintf("delivery %d (after @%d) is not the committed changes up to @%d", i, at, d.Rev), want)
		}
		at = d.Rev
	}
	if missed := changesIn(committed, w.Prefix, at, w.Until); len(missed) > 0 {
		return bad(len(w.Deliveries)-1, fmt.Sprintf("saw nothing after @%d, want everything up to @%d", at, w.Until), missed)
	}
	return nil
}

// changesIn returns the committed changes of prefix after revision after,
// up to and including through.
func changesIn(committed []Change, prefix string, after, through uint64) []Change {
	var out []Change
	for _, c := range committed {
		if c.Rev > after && c.Rev <= through && strings.HasPrefix(c.Key, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// stateAt returns the keys of prefix at revision rev.
func stateAt(committed []Change, prefix string, rev uint64) map[string]KV {
	st := map[string]KV{}
	for _, c := range committed {
		if c.Rev > rev {
			break
		}
		if !strings.HasPrefix(c.Key, prefix) {
			continue
		}
		if c.Deleted {
			delete(st, c.Key)
		} else {
			st[c.Key] = KV{Value: c.Value, ModRev: c.Rev}
		}
	}
	return st
}

// StateAt returns every key at revision rev, from the committed changes.
func StateAt(committed []Change, rev uint64) map[string]KV { return stateAt(committed, "", rev) }
