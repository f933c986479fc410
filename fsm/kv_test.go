package fsm

import (
	"slices"
	"strings"
	"testing"
)

func TestPutCreatesThenUpdates(t *testing.T) {
	h := newHarness(t, Options{})
	if res := h.ok(put("a", "1")); res.Rev != 1 {
		t.Fatalf("Rev after first put = %d, want 1", res.Rev)
	}
	h.ok(put("b", "x"))
	res := h.ok(put("a", "2"))
	if res.Rev != 3 {
		t.Fatalf("Rev = %d, want 3", res.Rev)
	}
	kv, ok := h.f.Get("a")
	want := KV{Key: "a", Value: []byte("2"), CreateRev: 1, ModRev: 3, Version: 2}
	if !ok || !kvEqual(kv, want) {
		t.Fatalf("Get(a) = %+v, %v; want %+v", kv, ok, want)
	}
	if got, want := describe(h.events(0, "")), []string{"put a=1@1", "put b=x@2", "put a=2@3"}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
}

func TestNoOpWritesEmitNothing(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(put("a", "1"))
	h.ok(eput("n1", "e", "1"))
	for _, c := range []Command{
		put("a", "1"),
		eput("n1", "e", "1"),
		del("missing"),
		delPrefix("nothing/"),
		{Op: OpExpireNode, Node: "n9"},
		{Op: OpRemoveNode, Node: "n9"},
		release("s", "n1", "h"),
		exportSet("n1"),
	} {
		ch := h.f.Changed()
		res := h.ok(c)
		if res.Rev != 2 || h.f.Rev() != 2 {
			t.Errorf("%+v: Rev = %d (result %d), want 2", c, h.f.Rev(), res.Rev)
		}
		select {
		case <-ch:
			t.Errorf("%+v: Changed fired for a no-op", c)
		default:
		}
	}
	if evs := h.events(2, ""); len(evs) != 0 {
		t.Fatalf("no-op writes produced events %q", describe(evs))
	}
	if h.f.Applied() != h.index {
		t.Fatalf("Applied = %d, want %d", h.f.Applied(), h.index)
	}
}

func TestEphemeralOwner(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(eput("n1", "e", "1"))
	if kv, _ := h.f.Get("e"); kv.Owner != "n1" {
		t.Fatalf("Owner = %q, want n1", kv.Owner)
	}
	// Same value, new owner: a change.
	if res := h.ok(eput("n2", "e", "1")); res.Rev != 2 {
		t.Fatalf("owner change did not move Rev: %d", res.Rev)
	}
	// A plain put takes the key from its owner, ignoring Node.
	h.ok(Command{Op: OpPut, Key: "e", Value: []byte("1"), Node: "n2"})
	if kv, _ := h.f.Get("e"); kv.Owner != "" || kv.Version != 3 {
		t.Fatalf("after plain put: %+v, want no owner, version 3", kv)
	}
	h.ok(Command{Op: OpExpireNode, Node: "n2"})
	if h.value("e") != "1" {
		t.Fatal("expiring a node deleted a key it no longer owns")
	}
}

func TestDeleteEventKeepsOldValue(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(eput("n1", "a", "1"))
	h.ok(put("a", "2"))
	h.ok(del("a"))
	evs := h.events(2, "")
	want := KV{Key: "a", Value: []byte("2"), CreateRev: 1, ModRev: 3, Version: 2}
	if len(evs) != 1 || evs[0].Type != EventDelete || !kvEqual(evs[0].KV, want) {
		t.Fatalf("events = %+v, want delete of %+v", evs, want)
	}
	h.ok(put("a", "3"))
	if kv, _ := h.f.Get("a"); kv.CreateRev != 4 || kv.Version != 1 {
		t.Fatalf("recreated key = %+v, want CreateRev 4, Version 1", kv)
	}
}

func TestDeletePrefix(t *testing.T) {
	h := newHarness(t, Options{})
	h.apply(put("p/b", "2"), put("p/a", "1"), put("pq", "3"), put("q", "4"), eput("n", "p/c", "5"))
	h.ok(delPrefix("p/"))
	if got, want := describe(h.events(1, "")), []string{"del p/a@2", "del p/b@2", "del p/c@2"}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	if kvs, _ := h.f.List("", 0); len(kvs) != 2 {
		t.Fatalf("left %d keys, want 2", len(kvs))
	}
	// The owner index forgot p/c: expiring n changes nothing.
	if res := h.ok(Command{Op: OpExpireNode, Node: "n"}); res.Rev != 2 {
		t.Fatalf("expire moved Rev to %d", res.Rev)
	}
}

func TestReservedPrefixes(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(acquire("s", 1, "n1", "h"))
	h.ok(exportSet("n1", Export{Kind: "file", Name: "f"}))
	for _, c := range []Command{
		put(SemaPrefix+"s", "x"),
		put(ExportPrefix+"n1/file/g", "x"),
		del(SemaPrefix + "s"),
		del(ExportPrefix + "n1/file/f"),
		delPrefix(""),
		delPrefix("_"),
		delPrefix(InternalPrefix),
		delPrefix(SemaPrefix),
		delPrefix(ExportPrefix + "n1/"),
		{Op: OpTxn, Then: []Command{put("ok", "1"), put(SemaPrefix+"t", "x")}},
		{Op: OpTxn, Compares: []Compare{{Target: CompareAbsent, Key: "zz"}}, Else: []Command{delPrefix(InternalPrefix)}},
	} {
		res := h.fails(c)
		if !strings.Contains(res.Err, "reserved") {
			t.Errorf("%+v: error %q does not mention the reserved prefix", c, res.Err)
		}
	}
	// Other internal keys are ordinary.
	h.ok(put(HostPrefix+"ns/n1", "v"))
	h.ok(delPrefix(HostPrefix))
}

func TestInvalidCommands(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(put("a", "1"))
	for _, tc := range []struct {
		name string
		c    Command
		err  string
	}{
		{"unknown op", Command{Op: 99, Key: "a"}, "unknown op 99"},
		{"zero op", Command{Key: "a"}, "unknown op 0"},
		{"put empty key", put("", "1"), "key is empty"},
		{"delete empty key", del(""), "key is empty"},
		{"ephemeral no node", Command{Op: OpPut, Key: "a", Ephemeral: true}, "node is empty"},
		{"ephemeral slash node", eput("a/b", "a", "2"), "contains '/'"},
		{"put with then", Command{Op: OpPut, Key: "a", Then: []Command{put("b", "1")}}, "transactions only"},
		{"txn bad target", Command{Op: OpTxn, Compares: []Compare{{Target: 9, Key: "a"}}}, "unknown target"},
		{"txn empty compare key", Command{Op: OpTxn, Compares: []Compare{{Target: CompareExists}}}, "key is empty"},
		{"txn acquire", Command{Op: OpTxn, Else: []Command{acquire("s", 1, "n", "h")}}, "not allowed"},
		{"txn exports", Command{Op: OpTxn, Exports: []Export{{Kind: "k", Name: "n"}}}, "export sets only"},
		{"txn bad then", Command{Op: OpTxn, Then: []Command{put("x", "1"), put("", "2")}}, "then 1: key is empty"},
		{"expire no node", Command{Op: OpExpireNode}, "node is empty"},
		{"remove slash node", Command{Op: OpRemoveNode, Node: "a/"}, "contains '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			if res := h.fails(tc.c); !strings.Contains(res.Err, tc.err) {
				t.Fatalf("Err = %q, want it to contain %q", res.Err, tc.err)
			}
		})
	}
}

func TestBatchSharesRevision(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(put("c", "0"))
	res := h.apply(put("a", "1"), put("a", "1"), del("missing"), put("b", "2"), del("c"), put("bad", ""), Command{Op: 42})
	wantRev := []uint64{2, 2, 2, 2, 2, 2, 2}
	for i, r := range res {
		if r.Rev != wantRev[i] {
			t.Errorf("result %d: Rev %d, want %d", i, r.Rev, wantRev[i])
		}
	}
	if res[6].Err == "" {
		t.Error("unknown op in a batch succeeded")
	}
	if got, want := describe(h.events(1, "")), []string{"put a=1@2", "put b=2@2", "del c@2", "put bad=@2"}; !slices.Equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	// A batch that changes nothing leaves Rev and reports it.
	res = h.apply(put("a", "1"), del("c"))
	if res[0].Rev != 2 || res[1].Rev != 2 || h.f.Rev() != 2 || h.f.Applied() != 3 {
		t.Fatalf("no-op batch: results %+v, Rev %d, Applied %d", res, h.f.Rev(), h.f.Applied())
	}
	// A first no-op command reports the old revision, the next the new one.
	res = h.apply(put("a", "1"), put("a", "9"))
	if res[0].Rev != 2 || res[1].Rev != 4 {
		t.Fatalf("results %+v, want Rev 2 then 4", res)
	}
}

func TestTxn(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(put("k", "v")) // rev 1
	for _, tc := range []struct {
		name string
		cmp  Compare
		want bool
	}{
		{"value holds", Compare{Target: CompareValue, Key: "k", Value: []byte("v")}, true},
		{"value differs", Compare{Target: CompareValue, Key: "k", Value: []byte("w")}, false},
		{"value of absent key", Compare{Target: CompareValue, Key: "nope"}, false},
		{"modrev holds", Compare{Target: CompareModRev, Key: "k", Rev: 1}, true},
		{"modrev differs", Compare{Target: CompareModRev, Key: "k", Rev: 2}, false},
		{"modrev zero of absent", Compare{Target: CompareModRev, Key: "nope"}, true},
		{"modrev zero of present", Compare{Target: CompareModRev, Key: "k"}, false},
		{"exists", Compare{Target: CompareExists, Key: "k"}, true},
		{"exists absent", Compare{Target: CompareExists, Key: "nope"}, false},
		{"absent", Compare{Target: CompareAbsent, Key: "nope"}, true},
		{"absent present", Compare{Target: CompareAbsent, Key: "k"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			h.ok(del("then"))
			h.ok(del("else"))
			res := h.ok(Command{Op: OpTxn, Compares: []Compare{tc.cmp},
				Then: []Command{put("then", "1")}, Else: []Command{put("else", "1")}})
			if res.OK != tc.want {
				t.Fatalf("OK = %v, want %v", res.OK, tc.want)
			}
			ran, other := "then", "else"
			if !tc.want {
				ran, other = other, ran
			}
			if h.value(ran) != "1" || h.value(other) != "<absent>" {
				t.Fatalf("%s = %q, %s = %q; want the %s branch alone", ran, h.value(ran), other, h.value(other), ran)
			}
		})
	}
	h.t = t
	// Every compare must hold; no compares always holds.
	res := h.ok(Command{Op: OpTxn, Compares: []Compare{
		{Target: CompareExists, Key: "k"}, {Target: CompareExists, Key: "nope"},
	}, Then: []Command{put("x", "then")}, Else: []Command{put("x", "else"), delPrefix("the")}})
	if res.OK || h.value("x") != "else" || h.value("then") != "<absent>" {
		t.Fatalf("OK = %v, x = %q, then = %q", res.OK, h.value("x"), h.value("then"))
	}
	if res := h.ok(Command{Op: OpTxn, Then: []Command{eput("n1", "y", "1"), del("x")}}); !res.OK {
		t.Fatal("a transaction without compares did not take its then branch")
	}
	if kv, _ := h.f.Get("y"); kv.Owner != "n1" || h.value("x") != "<absent>" {
		t.Fatalf("y = %+v, x = %q", kv, h.value("x"))
	}
	// Compare-and-swap that lost: nothing changes, Rev stays.
	rev := h.f.Rev()
	res = h.ok(Command{Op: OpTxn, Compares: []Compare{{Target: CompareModRev, Key: "k", Rev: 99}}, Then: []Command{put("k", "new")}})
	if res.OK || res.Rev != rev || h.value("k") != "v" {
		t.Fatalf("lost CAS: %+v, k = %q", res, h.value("k"))
	}
}

func TestListAndGet(t *testing.T) {
	h := newHarness(t, Options{})
	h.apply(put("b/2", "2"), put("a", "0"), put("b/1", "1"), put("b/3", "3"), put("c", "4"))
	kvs, rev := h.f.List("b/", 0)
	if rev != 1 || len(kvs) != 3 || kvs[0].Key != "b/1" || kvs[2].Key != "b/3" {
		t.Fatalf("List(b/) = %+v at %d", kvs, rev)
	}
	if kvs, _ := h.f.List("b/", 2); len(kvs) != 2 || kvs[1].Key != "b/2" {
		t.Fatalf("List(b/, 2) = %+v", kvs)
	}
	if kvs, _ := h.f.List("", 0); len(kvs) != 5 {
		t.Fatalf("List() has %d keys, want 5", len(kvs))
	}
	if _, ok := h.f.Get("b"); ok {
		t.Fatal("Get(b) found a key that does not exist")
	}
}

func kvEqual(a, b KV) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value) && a.CreateRev == b.CreateRev &&
		a.ModRev == b.ModRev && a.Version == b.Version && a.Owner == b.Owner
}
