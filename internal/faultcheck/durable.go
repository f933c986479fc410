package faultcheck

import (
	"fmt"
	"maps"
	"slices"
)

// Write is one write a client made to a key: a put or a CAS that swapped
// (or may have) setting Value, or a delete.
type Write struct {
	Key     string
	Value   string
	Deleted bool
	// Acked says the client was told it was applied, at revision Rev
	// (for a delete of a missing key, the revision it was found missing
	// at). A write whose outcome is unknown is not acked; one known not
	// to have applied is not a Write at all.
	Acked bool
	Rev   uint64
}

func (w Write) String() string {
	what := "put " + w.Key + "=" + w.Value
	if w.Deleted {
		what = "delete " + w.Key
	}
	if w.Acked {
		return fmt.Sprintf("%s acked @%d", what, w.Rev)
	}
	return what + " outcome unknown"
}

// Durable checks a node's keys after recovery against the writes made:
// each key holds what its last acknowledged write left (the value, or
// nothing after a delete), or what a later write of the key left (one
// acknowledged at that revision, or one whose outcome is unknown); and no
// key holds a value nobody wrote. Values must be unique to their write.
// Writes acknowledged at the same revision were applied in one raft entry
// (the leader batches concurrent writes), in an order their revisions do
// not tell: the key may hold what any of them left. node names the node
// whose keys final are, for the report.
func Durable(node string, writes []Write, final map[string]KV) error {
	byKey := map[string][]Write{}
	for _, w := range writes {
		byKey[w.Key] = append(byKey[w.Key], w)
	}
	keys := slices.Sorted(maps.Keys(byKey))
	for k := range final {
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		kv, exists := final[k]
		if why := durableKey(byKey[k], kv, exists); why != "" {
			hist := make([]string, len(byKey[k]))
			for i, w := range byKey[k] {
				hist[i] = w.String()
			}
			now := "absent"
			if exists {
				now = fmt.Sprintf("%s@%d", kv.Value, kv.ModRev)
			}
			return &Violation{Checker: "durable", What: fmt.Sprintf("node %s: key %q is %s: %s", node, k, now, why), History: hist}
		}
	}
	return nil
}

// durableKey says what is wrong with a key holding kv (if exists) after
// writes, or "".
func durableKey(writes []Write, kv KV, exists bool) string {
	var last *Write
	for i := range writes {
		if w := &writes[i]; w.Acked && (last == nil || w.Rev > last.Rev) {
			last = w
		}
	}
	// could have been applied after last, or in last's entry after it
	later := func(w Write) bool {
		return !w.Acked || last == nil || w.Rev >= last.Rev
	}
	if !exists {
		switch {
		case last == nil || last.Deleted:
			return ""
		case slices.ContainsFunc(writes, func(w Write) bool { return w.Deleted && later(w) }):
			return ""
		}
		return fmt.Sprintf("the acknowledged %s is lost", last)
	}
	i := slices.IndexFunc(writes, func(w Write) bool { return !w.Deleted && w.Value == kv.Value })
	switch {
	case i < 0:
		return "nobody wrote that value"
	case last != nil && kv.ModRev < last.Rev:
		return fmt.Sprintf("the acknowledged %s is lost", last)
	case writes[i].Acked && writes[i].Rev != kv.ModRev:
		return fmt.Sprintf("it was written @%d, not @%d", writes[i].Rev, kv.ModRev)
	}
	return ""
}
