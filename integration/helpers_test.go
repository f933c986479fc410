package integration

import (
	"testing"
	"time"
)

// The harness's own logic, without namespaces: these run anywhere.

func TestOwnerOfReadsTheRunsPIDFromItsNames(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"gft123b1", 123, true}, {"gft123p1", 123, true}, {"gft4194304va", 4194304, true},
		{"gft123-1-h2", 123, true}, {"gft123v1h9", 123, true},
		{"gft", 0, false}, {"gft123", 0, false}, {"gftx1b1", 0, false}, {"eth0", 0, false}, {"gft12x1", 0, false},
	} {
		pid, ok := ownerOf(c.name)
		if pid != c.pid || ok != c.ok {
			t.Errorf("ownerOf(%q) = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
}

func TestNoOverlapFindsRunsThatOverlap(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	apart := map[string]run{"a": {start: at(0), end: at(4)}, "b": {start: at(4), end: at(8)}, "c": {start: at(10), end: at(14)}}
	if err := noOverlap(apart); err != nil {
		t.Errorf("runs one after the other: %v", err)
	}
	apart["d"] = run{start: at(13), end: at(15)}
	if err := noOverlap(apart); err == nil {
		t.Error("c (10 to 14) and d (13 to 15) overlap, and noOverlap said nothing")
	}
}
