package faultcheck

import (
	"errors"
	"strings"
	"testing"
)

func put(c int, key, v string, call, ret int64) KVOp {
	return KVOp{Client: c, Kind: Put, Key: key, Value: v, Call: call, Return: ret}
}

func get(c int, key string, call, ret int64, got string) KVOp {
	return KVOp{Client: c, Kind: Get, Key: key, Call: call, Return: ret, Found: got != "", Got: got}
}

func del(c int, key string, call, ret int64) KVOp {
	return KVOp{Client: c, Kind: Delete, Key: key, Call: call, Return: ret}
}

func cas(c int, key, old, v string, call, ret int64, swapped bool) KVOp {
	return KVOp{Client: c, Kind: CAS, Key: key, Expect: old, ExpectAbsent: old == "", Value: v, Call: call, Return: ret, Swapped: swapped}
}

// Histories the World may produce pass: sequential ones, concurrent
// writes read in either order, unknown outcomes that did or did not
// apply, CAS and delete with their semantics, keys checked apart.
func TestLinearizableAcceptsLegalHistories(t *testing.T) {
	for name, ops := range map[string][]KVOp{
		"sequential": {put(0, "a", "1", 1, 2), get(1, "a", 3, 4, "1"), del(0, "a", 5, 6), get(1, "a", 7, 8, "")},
		"concurrent writes, either order read": {
			put(0, "a", "1", 1, 10), put(1, "a", "2", 2, 9), get(2, "a", 11, 12, "1"), get(3, "a", 13, 14, "1")},
		"read during a write sees old or new": {
			put(0, "a", "1", 1, 2), put(0, "a", "2", 3, 10), get(1, "a", 4, 5, "2"), get(2, "a", 6, 7, "2")},
		"unknown write applied late": {
			put(0, "a", "1", 1, Unknown), get(1, "a", 2, 3, ""), get(1, "a", 4, 5, "1"), get(2, "a", 6, 7, "1")},
		"unknown write never applied": {put(0, "a", "1", 1, Unknown), get(1, "a", 20, 21, "")},
		"cas": {
			cas(0, "a", "", "1", 1, 2, true), cas(1, "a", "", "2", 3, 4, false), cas(1, "a", "1", "2", 5, 6, true),
			cas(0, "a", "1", "3", 7, 8, false), get(2, "a", 9, 10, "2")},
		"unknown cas either way": {
			put(0, "a", "1", 1, 2), cas(1, "a", "1", "2", 3, Unknown, false), get(2, "a", 4, 5, "1"), get(2, "a", 6, 7, "2")},
		"keys apart":          {put(0, "a", "1", 1, 2), put(0, "b", "2", 3, 4), get(1, "a", 5, 6, "1"), get(1, "b", 5, 6, "2")},
		"unknown get ignored": {put(0, "a", "1", 1, 2), {Client: 1, Kind: Get, Key: "a", Call: 3, Return: Unknown, Got: "zz", Found: true}},
	} {
		if err := Linearizable(ops, 0); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Histories no single order explains are flagged, naming the key and the
// operation that could not be placed.
func TestLinearizableFlagsBadHistories(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ops     []KVOp
		blocked string // in the report
	}{
		{"stale read", []KVOp{put(0, "a", "1", 1, 2), put(0, "a", "2", 3, 4), get(1, "a", 5, 6, "1")}, "get a: 1"},
		{"read of a deleted key", []KVOp{put(0, "a", "1", 1, 2), del(0, "a", 3, 4), get(1, "a", 5, 6, "1")}, "get a: 1"},
		{"value nobody wrote", []KVOp{put(0, "a", "1", 1, 2), get(1, "a", 3, 4, "9")}, "get a: 9"},
		{"lost write read", []KVOp{put(0, "a", "1", 1, 2), get(1, "a", 3, 4, "")}, "get a: (absent)"},
		{"reads flip back", []KVOp{put(0, "a", "1", 1, Unknown), get(1, "a", 2, 3, "1"), get(1, "a", 4, 5, "")}, "get a: (absent)"},
		{"cas swapped on a wrong value", []KVOp{put(0, "a", "1", 1, 2), cas(1, "a", "7", "2", 3, 4, true)}, "cas a 7->2"},
		{"cas refused on the right value", []KVOp{put(0, "a", "1", 1, 2), cas(1, "a", "1", "2", 3, 4, false)}, "cas a 1->2"},
		{"cas on absent while present", []KVOp{put(0, "a", "1", 1, 2), cas(1, "a", "", "2", 3, 4, true)}, "cas a (absent)->2"},
	} {
		err := Linearizable(append(tc.ops, put(5, "other", "x", 1, 2)), 0)
		var v *Violation
		if !errors.As(err, &v) {
			t.Errorf("%s: %v, want a violation", tc.name, err)
			continue
		}
		if !strings.Contains(v.What, `key "a"`) || !strings.Contains(strings.Join(v.History, "\n"), tc.blocked) {
			t.Errorf("%s: the report does not name key a and the operation %q:\n%v", tc.name, tc.blocked, err)
		}
	}
}
