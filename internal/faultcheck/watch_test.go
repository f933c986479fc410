package faultcheck

import (
	"errors"
	"strings"
	"testing"
)

// committedLog is a history of three keys, two under k/.
var committedLog = []Change{
	{Rev: 3, Key: "k/a", Value: "1"},
	{Rev: 4, Key: "x", Value: "9"},
	{Rev: 5, Key: "k/b", Value: "2"},
	{Rev: 7, Key: "k/a", Value: "1", Deleted: true},
	{Rev: 8, Key: "k/b", Value: "3"},
}

func ch(i int) Change { return committedLog[i] }

// Every change in order, in one or several deliveries, or a resync in
// between that holds the committed state, passes.
func TestWatchAcceptsCompleteWatches(t *testing.T) {
	for name, w := range map[string]WatchLog{
		"one by one": {From: 2, Until: 8, Deliveries: []Delivery{
			{Rev: 3, Changes: []Change{ch(0)}}, {Rev: 5, Changes: []Change{ch(2)}}, {Rev: 7, Changes: []Change{ch(3)}},
			{Rev: 8, Changes: []Change{ch(4)}}}},
		"batched": {From: 2, Until: 8, Deliveries: []Delivery{{Rev: 6, Changes: []Change{ch(0), ch(2)}}, {Rev: 8, Changes: []Change{ch(3), ch(4)}}}},
		"resync": {From: 2, Until: 8, Deliveries: []Delivery{
			{Rev: 3, Changes: []Change{ch(0)}},
			{Rev: 7, Resync: true, State: map[string]KV{"k/b": {Value: "2", ModRev: 5}}},
			{Rev: 8, Changes: []Change{ch(4)}}}},
		"from the middle, no end required": {From: 5, Deliveries: []Delivery{{Rev: 7, Changes: []Change{ch(3)}}}},
	} {
		w.Name, w.Prefix = "n0", "k/"
		if err := Watch(committedLog, w); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A missed, duplicated, reordered or foreign event, a resync whose state
// is not the committed one or goes back in time, and a watch that stopped
// short are flagged.
func TestWatchFlagsMissedDuplicatedReorderedEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   []Delivery
		want string
	}{
		{"missed", []Delivery{{Rev: 3, Changes: []Change{ch(0)}}, {Rev: 8, Changes: []Change{ch(3), ch(4)}}},
			"delivery 1 (after @3) is not the committed changes"},
		{"duplicated", []Delivery{{Rev: 5, Changes: []Change{ch(0), ch(2)}}, {Rev: 8, Changes: []Change{ch(2), ch(3), ch(4)}}},
			"delivery 1 (after @5) is not the committed changes"},
		{"reordered", []Delivery{{Rev: 8, Changes: []Change{ch(0), ch(3), ch(2), ch(4)}}}, "delivery 0 (after @2)"},
		{"outside the prefix", []Delivery{{Rev: 8, Changes: []Change{ch(0), ch(1), ch(2), ch(3), ch(4)}}}, "delivery 0 (after @2)"},
		{"wrong value", []Delivery{{Rev: 8, Changes: []Change{ch(0), ch(2), ch(3), {Rev: 8, Key: "k/b", Value: "4"}}}}, "delivery 0"},
		{"bad resync", []Delivery{{Rev: 7, Resync: true, State: map[string]KV{"k/b": {Value: "3", ModRev: 8}}},
			{Rev: 8, Changes: []Change{ch(4)}}}, "resync 0 at @7 does not hold the committed state"},
		{"back in time", []Delivery{{Rev: 7, Changes: []Change{ch(0), ch(2), ch(3)}},
			{Rev: 5, Resync: true, State: map[string]KV{"k/a": {Value: "1", ModRev: 3}, "k/b": {Value: "2", ModRev: 5}}}},
			"goes back to @5 after @7"},
		{"stopped short", []Delivery{{Rev: 5, Changes: []Change{ch(0), ch(2)}}}, "saw nothing after @5, want everything up to @8"},
	} {
		err := Watch(committedLog, WatchLog{Name: "n0", Prefix: "k/", From: 2, Until: 8, Deliveries: tc.ds})
		var v *Violation
		if !errors.As(err, &v) || !strings.Contains(v.What, tc.want) {
			t.Errorf("%s: %v, want a violation saying %q", tc.name, err, tc.want)
		}
	}
}
