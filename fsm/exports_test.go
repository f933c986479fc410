package fsm

import (
	"slices"
	"strings"
	"testing"
)

func TestExportSet(t *testing.T) {
	h := newHarness(t, Options{})
	x := func(kind, name, data string) Export { return Export{Kind: kind, Name: name, Data: []byte(data)} }
	key := func(node, kind, name string) string { return ExportPrefix + node + "/" + kind + "/" + name }

	// Add: unsorted input, stored and announced in key order.
	h.ok(exportSet("n1", x("file", "/etc/b", "B"), x("file", "/etc/a", "A")))
	h.ok(exportSet("n10", x("file", "/etc/a", "other node")))
	if got, want := describe(h.events(0, ExportPrefix+"n1/")), []string{
		"put " + key("n1", "file", "/etc/a") + "=A@1",
		"put " + key("n1", "file", "/etc/b") + "=B@1",
	}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}

	// Change one, keep one, add one: two events.
	h.ok(exportSet("n1", x("file", "/etc/a", "A"), x("file", "/etc/b", "B2"), x("svc", "web", "W")))
	if got, want := describe(h.events(2, "")), []string{
		"put " + key("n1", "file", "/etc/b") + "=B2@3",
		"put " + key("n1", "svc", "web") + "=W@3",
	}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}

	// Unchanged set: no event, no new revision.
	if res := h.ok(exportSet("n1", x("svc", "web", "W"), x("file", "/etc/b", "B2"), x("file", "/etc/a", "A"))); res.Rev != 3 {
		t.Fatalf("unchanged export set moved Rev to %d", res.Rev)
	}

	// Remove two.
	h.ok(exportSet("n1", x("file", "/etc/b", "B2")))
	if got, want := describe(h.events(3, "")), []string{
		"del " + key("n1", "file", "/etc/a") + "@5",
		"del " + key("n1", "svc", "web") + "@5",
	}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	kvs, _ := h.f.List(ExportPrefix, 0)
	if len(kvs) != 2 || kvs[0].Key != key("n1", "file", "/etc/b") || kvs[1].Key != key("n10", "file", "/etc/a") {
		t.Fatalf("exports = %+v", kvs)
	}

	// Exports survive expiry, go with removal.
	h.ok(Command{Op: OpExpireNode, Node: "n1"})
	if h.value(key("n1", "file", "/etc/b")) != "B2" {
		t.Fatal("expiring a node deleted its exports")
	}
	h.ok(Command{Op: OpRemoveNode, Node: "n1"})
	if kvs, _ := h.f.List(ExportPrefix, 0); len(kvs) != 1 || kvs[0].Key != key("n10", "file", "/etc/a") {
		t.Fatalf("after removing n1, exports = %+v", kvs)
	}
}

func TestExportSetInvalid(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(exportSet("n1", Export{Kind: "file", Name: "a"}))
	for _, tc := range []struct {
		name string
		c    Command
		err  string
	}{
		{"no node", exportSet("", Export{Kind: "k", Name: "n"}), "node is empty"},
		{"slash node", exportSet("a/b", Export{Kind: "k", Name: "n"}), "contains '/'"},
		{"empty kind", exportSet("n1", Export{Name: "n"}), "kind is empty"},
		{"slash kind", exportSet("n1", Export{Kind: "a/b", Name: "n"}), "contains '/'"},
		{"empty name", exportSet("n1", Export{Kind: "k"}), "name is empty"},
		{"duplicate", exportSet("n1", Export{Kind: "k", Name: "n", Data: []byte("1")}, Export{Kind: "x", Name: "y"},
			Export{Kind: "k", Name: "n", Data: []byte("2")}), `"k/n" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			if res := h.fails(tc.c); !strings.Contains(res.Err, tc.err) {
				t.Fatalf("Err = %q, want it to contain %q", res.Err, tc.err)
			}
		})
	}
}
