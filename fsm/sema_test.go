package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestSemaFIFOAndTokens(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.ok(acquire("db", 1, "n1", "a")) // index 1
	if !a.Granted || a.Token != 1 || a.Rev != 1 {
		t.Fatalf("first acquire = %+v, want granted with token 1", a)
	}
	for _, holder := range []string{"b", "c"} {
		if res := h.ok(acquire("db", 1, "n2", holder)); res.Granted || res.Token != 0 {
			t.Fatalf("acquire %s = %+v, want it queued", holder, res)
		}
	}
	st, ok := h.f.Sema("db")
	want := SemaState{Count: 1, Holders: []Slot{{"n1", "a", 1}}, Waiters: []Slot{{"n2", "b", 0}, {"n2", "c", 0}}}
	if !ok || !reflect.DeepEqual(st, want) {
		t.Fatalf("Sema = %+v, want %+v", st, want)
	}

	h.ok(release("db", "n1", "a")) // index 4: b gets the slot
	st, _ = h.f.Sema("db")
	if want := []Slot{{"n2", "b", 4}}; !reflect.DeepEqual(st.Holders, want) {
		t.Fatalf("holders = %+v, want %+v", st.Holders, want)
	}
	h.ok(release("db", "n2", "b")) // index 5: c
	st, _ = h.f.Sema("db")
	if want := []Slot{{"n2", "c", 5}}; !reflect.DeepEqual(st.Holders, want) || len(st.Waiters) != 0 {
		t.Fatalf("state = %+v, want c holding with token 5", st)
	}
	h.ok(release("db", "n2", "c"))
	if _, ok := h.f.Sema("db"); ok {
		t.Fatal("semaphore with no holders and no waiters was kept")
	}
	if _, ok := h.f.Get(SemaPrefix + "db"); ok {
		t.Fatal("semaphore key was kept")
	}
}

func TestSemaWatchersSeeGrants(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(acquire("s", 1, "n1", "a"))
	h.ok(acquire("s", 1, "n2", "b"))
	h.ok(release("s", "n1", "a"))
	evs := h.events(2, SemaPrefix)
	if len(evs) != 1 || evs[0].Type != EventPut {
		t.Fatalf("events = %q", describe(evs))
	}
	var st SemaState
	if err := msgpack.Unmarshal(evs[0].KV.Value, &st); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if len(st.Holders) != 1 || st.Holders[0].Holder != "b" || st.Holders[0].Token != 3 {
		t.Fatalf("watched state = %+v, want b holding with token 3", st)
	}
}

func TestSemaIdempotentAcquire(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(acquire("s", 2, "n1", "a"))
	h.ok(acquire("s", 2, "n1", "b"))
	h.ok(acquire("s", 2, "n2", "c"))
	before := h.f.Rev()
	if res := h.ok(acquire("s", 2, "n1", "a")); !res.Granted || res.Token != 1 || res.Rev != before {
		t.Fatalf("acquire by a holder = %+v, want granted, token 1, Rev %d", res, before)
	}
	if res := h.ok(acquire("s", 2, "n2", "c")); res.Granted || res.Rev != before {
		t.Fatalf("acquire by a waiter = %+v, want queued, Rev %d", res, before)
	}
	// The same holder name on another node is another holder.
	if res := h.ok(acquire("s", 2, "n3", "a")); res.Granted || res.Rev == before {
		t.Fatalf("acquire by n3/a = %+v, want queued anew", res)
	}
	// Releasing something not held or queued changes nothing.
	if res := h.ok(release("s", "n9", "a")); res.Rev != h.f.Rev() || h.f.Rev() != 6 {
		t.Fatalf("release of a stranger = %+v", res)
	}
}

func TestSemaReleaseWaiter(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(acquire("s", 1, "n1", "a"))
	h.ok(acquire("s", 1, "n1", "b"))
	h.ok(acquire("s", 1, "n1", "c"))
	h.ok(release("s", "n1", "b"))
	h.ok(release("s", "n1", "a"))
	st, _ := h.f.Sema("s")
	if len(st.Holders) != 1 || st.Holders[0].Holder != "c" || len(st.Waiters) != 0 {
		t.Fatalf("state = %+v, want c holding, nobody waiting", st)
	}
}

func TestSemaCountMismatch(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(acquire("s", 2, "n1", "a"))
	if res := h.fails(acquire("s", 3, "n1", "b")); !strings.Contains(res.Err, "has count 2, not 3") {
		t.Fatalf("Err = %q", res.Err)
	}
	h.fails(acquire("s", 3, "n1", "a")) // even for a holder
	h.ok(release("s", "n1", "a"))
	if res := h.ok(acquire("s", 3, "n1", "b")); !res.Granted {
		t.Fatal("a semaphore gone idle did not take a new count")
	}
}

func TestSemaTokensIncreaseWithinOneEntry(t *testing.T) {
	h := newHarness(t, Options{})
	res := h.apply(acquire("s", 1, "n1", "a"), release("s", "n1", "a"), acquire("s", 1, "n2", "b"),
		acquire("t", 1, "n3", "c"))
	if res[0].Token != 1 || res[2].Token != 2 || res[3].Token != 3 {
		t.Fatalf("tokens = %d, %d, %d; want 1, 2, 3", res[0].Token, res[2].Token, res[3].Token)
	}
	// The next entry, index 2, may not hand out 2 or 3 again.
	res = h.apply(release("s", "n2", "b"), acquire("s", 1, "n1", "d"))
	if res[1].Token != 4 {
		t.Fatalf("token = %d, want 4", res[1].Token)
	}
	// Tokens run ahead of indexes until entries without grants let the
	// index catch up.
	if res := h.ok(acquire("u", 1, "n1", "e")); res.Token != 5 || h.index != 3 {
		t.Fatalf("token = %d at index %d, want 5 at 3", res.Token, h.index)
	}
	h.apply(put("x", "1"))
	if res := h.ok(acquire("v", 1, "n1", "e")); res.Token != 6 || h.index != 5 {
		t.Fatalf("token = %d at index %d, want 6 at 5", res.Token, h.index)
	}
	h.apply(put("x", "2"))
	h.apply(put("x", "3"))
	if res := h.ok(acquire("w", 1, "n1", "e")); res.Token != h.index {
		t.Fatalf("token = %d, want the index %d", res.Token, h.index)
	}
}

func TestExpireNodeReleasesSlots(t *testing.T) {
	h := newHarness(t, Options{})
	h.apply(
		acquire("s", 1, "n1", "a"), // n1 holds s
		acquire("s", 1, "n2", "b"), // n2 waits for s
		acquire("t", 1, "n2", "c"), // n2 holds t
		acquire("t", 1, "n1", "d"), // n1 waits for t
		acquire("u", 2, "n1", "e"), // n1 alone holds u
		eput("n1", "e/1", "x"),     // n1's ephemeral keys
		eput("n1", "e/2", "x"),     //
		eput("n2", "e/3", "x"),     // n2's
		exportSet("n1", Export{Kind: "k", Name: "n"}),
	)
	res := h.ok(Command{Op: OpExpireNode, Node: "n1"}) // index 2
	if res.Rev != 2 {
		t.Fatalf("Rev = %d", res.Rev)
	}
	// Entry 1 gave tokens 1 to 3, so index 2 gives 4.
	if st, _ := h.f.Sema("s"); len(st.Holders) != 1 || st.Holders[0] != (Slot{"n2", "b", 4}) {
		t.Fatalf("s = %+v, want n2/b holding with token 4", st)
	}
	if st, _ := h.f.Sema("t"); len(st.Waiters) != 0 || len(st.Holders) != 1 {
		t.Fatalf("t = %+v, want n1's queue place gone", st)
	}
	if _, ok := h.f.Sema("u"); ok {
		t.Fatal("u is still held")
	}
	if kvs, _ := h.f.List("e/", 0); len(kvs) != 1 || kvs[0].Key != "e/3" {
		t.Fatalf("ephemeral keys left = %+v, want e/3", kvs)
	}
	if kvs, _ := h.f.List(ExportPrefix, 0); len(kvs) != 1 {
		t.Fatal("expiry deleted exports")
	}
	// Again: nothing left to do.
	if res := h.ok(Command{Op: OpRemoveNode, Node: "n1"}); res.Rev != 3 {
		t.Fatalf("remove Rev = %d, want 3 (exports)", res.Rev)
	}
	if res := h.ok(Command{Op: OpRemoveNode, Node: "n1"}); res.Rev != 3 {
		t.Fatalf("second remove moved Rev to %d", res.Rev)
	}
}

func TestSemaInvalid(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(acquire("s", 1, "n1", "a"))
	for _, tc := range []struct {
		name string
		c    Command
		err  string
	}{
		{"no sema", acquire("", 1, "n", "h"), "sema is empty"},
		{"no node", acquire("s", 1, "", "h"), "node is empty"},
		{"slash node", acquire("s", 1, "a/b", "h"), "contains '/'"},
		{"no holder", acquire("s", 1, "n", ""), "holder is empty"},
		{"zero count", acquire("x", 0, "n", "h"), "at least 1"},
		{"negative count", acquire("x", -1, "n", "h"), "at least 1"},
		{"release no holder", release("s", "n1", ""), "holder is empty"},
		{"release no sema", release("", "n1", "a"), "sema is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			if res := h.fails(tc.c); !strings.Contains(res.Err, tc.err) {
				t.Fatalf("Err = %q, want it to contain %q", res.Err, tc.err)
			}
		})
	}
}

func TestSemaStateSizeLimit(t *testing.T) {
	// Restore a semaphore whose queue of half-length names leaves less
	// room in a value than a slot with full-length names takes, and
	// more than a short one does.
	half := MaxNameSize / 2
	st := SemaState{Count: 1, Holders: []Slot{{Node: "n", Holder: "h", Token: 1}}}
	size := func(n int) int {
		st.Waiters = st.Waiters[:0]
		for i := range n {
			st.Waiters = append(st.Waiters, Slot{Node: strings.Repeat("n", half), Holder: fmt.Sprintf("%0*d", half, i)})
		}
		b, err := encodeSema(st)
		if err != nil {
			t.Fatal(err)
		}
		return len(b) + slotTokenSize*n
	}
	const room = 100
	per := size(21) - size(20)
	n := 20 + (MaxValueSize-room-size(20))/per
	if got := size(n); got > MaxValueSize-room || got+per <= MaxValueSize-room {
		t.Fatalf("%d waiters make %d bytes", n, got)
	}
	value, _ := encodeSema(st)
	tree := newTree()
	tree.ReplaceOrInsert(KV{Key: SemaPrefix + "big", Value: value, CreateRev: 1, ModRev: 1, Version: 1})
	var buf bytes.Buffer
	if err := (&Snapshot{index: 1, rev: 1, token: 1, tree: tree}).Persist(&buf); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{})
	if err := h.f.Restore(&buf); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	h.index = 1
	res := h.fails(acquire("big", 1, strings.Repeat("n", MaxNameSize), strings.Repeat("x", MaxNameSize)))
	if !strings.Contains(res.Err, "limit exceeded") {
		t.Fatalf("Err = %q, want the state size limit", res.Err)
	}
	h.ok(acquire("big", 1, "n", "short")) // a short name still fits
}
