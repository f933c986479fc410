package fsm

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// richState fills h with every kind of state.
func richState(h *harness) {
	h.apply(put("a", "1"), put("b", ""), eput("n1", "e/1", "x"), eput("n2", "e/2", "y"))
	h.apply(put("a", "2"), del("b"))
	h.apply(exportSet("n1", Export{Kind: "file", Name: "/etc/motd", Data: []byte("hi")}, Export{Kind: "svc", Name: "web"}))
	h.apply(acquire("s", 1, "n1", "h1"), acquire("s", 1, "n2", "h2"), acquire("t", 3, "n2", "h3"))
	h.apply(put(HostPrefix+"ns/n1", "v"))
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := newHarness(t, Options{})
	richState(h)
	snap := h.snapshot()

	r := newHarness(t, Options{})
	if err := r.f.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if r.f.Applied() != h.f.Applied() || r.f.Rev() != h.f.Rev() {
		t.Fatalf("restored Applied %d, Rev %d; want %d, %d", r.f.Applied(), r.f.Rev(), h.f.Applied(), h.f.Rev())
	}
	want, wantRev := h.f.List("", 0)
	got, gotRev := r.f.List("", 0)
	if !reflect.DeepEqual(got, want) || gotRev != wantRev {
		t.Fatalf("restored keys = %+v at %d\nwant %+v at %d", got, gotRev, want, wantRev)
	}
	if got, want := persist(t, r.f), snap; !bytes.Equal(got, want) {
		t.Fatal("the restored state persists differently")
	}
	gotSema, _ := r.f.Sema("s")
	wantSema, _ := h.f.Sema("s")
	if !reflect.DeepEqual(gotSema, wantSema) {
		t.Fatalf("Sema(s) = %+v, want %+v", gotSema, wantSema)
	}

	// Both carry on alike: owners, tokens and semaphores came along.
	r.index = h.index
	next := []Command{{Op: OpExpireNode, Node: "n1"}, acquire("u", 1, "n3", "h4"), {Op: OpRemoveNode, Node: "n1"}}
	if a, b := h.apply(next...), r.apply(next...); !reflect.DeepEqual(a, b) {
		t.Fatalf("results differ after restore:\n%+v\n%+v", a, b)
	}
	if !bytes.Equal(h.snapshot(), r.snapshot()) {
		t.Fatal("states differ after the same commands")
	}
	if kvs, _ := r.f.List("e/", 0); len(kvs) != 1 || kvs[0].Key != "e/2" {
		t.Fatalf("expiry after restore left %+v", kvs)
	}
}

func TestPersistWhileApplying(t *testing.T) {
	h := newHarness(t, Options{History: 100})
	for i := range 2000 {
		h.apply(put("k/"+itoa(uint64(i%300)), itoa(uint64(i))), eput("n", "e/"+itoa(uint64(i%50)), "x"))
	}
	want, wantRev := h.f.List("", 0)
	s := h.f.Snapshot()
	defer s.Release()
	if s.Index() != h.index {
		t.Fatalf("Index = %d, want %d", s.Index(), h.index)
	}

	var buf bytes.Buffer
	errc := make(chan error, 1)
	go func() { errc <- s.Persist(&buf) }()
	for i := range 2000 {
		h.apply(put("k/"+itoa(uint64(i%400)), "new"+itoa(uint64(i))), del("k/"+itoa(uint64(i%7))),
			Command{Op: OpExpireNode, Node: "n"})
		if i%100 == 0 {
			h.f.List("k/", 10)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Persist: %v", err)
	}

	r := newHarness(t, Options{})
	if err := r.f.Restore(&buf); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, gotRev := r.f.List("", 0)
	if !reflect.DeepEqual(got, want) || gotRev != wantRev {
		t.Fatalf("restored %d keys at %d, want %d at %d", len(got), gotRev, len(want), wantRev)
	}
}

func TestSnapshotReleased(t *testing.T) {
	f := New(Options{})
	s := f.Snapshot()
	s.Release()
	if err := s.Persist(io.Discard); err == nil {
		t.Fatal("Persist after Release succeeded")
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	good := newHarness(t, Options{})
	richState(good)
	snap := good.snapshot()

	// build persists a snapshot of hand-made keys.
	build := func(index, rev, token uint64, kvs ...KV) []byte {
		tree := newTree()
		for _, kv := range kvs {
			tree.ReplaceOrInsert(kv)
		}
		var buf bytes.Buffer
		if err := (&Snapshot{index: index, rev: rev, token: token, tree: tree}).Persist(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	sema := func(st SemaState) []byte {
		b, err := msgpack.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kv := func(key, value string) KV {
		return KV{Key: key, Value: []byte(value), CreateRev: 1, ModRev: 1, Version: 1}
	}
	outOfOrder := build(1, 1, 0, kv("a", "1"), kv("b", "2"))
	outOfOrder = bytes.Replace(outOfOrder, []byte("\xa1b"), []byte("\xa1a"), 1)

	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"empty", nil, "format"},
		{"bad format", append([]byte{9}, snap[1:]...), "unknown format 9"},
		{"truncated", snap[:len(snap)-3], "EOF"},
		{"trailing data", append(bytes.Clone(snap), 0x01), "data after the last key"},
		{"keys out of order", outOfOrder, "out of order"},
		{"rev above index", build(1, 2, 0), "revision 2 above index 1"},
		{"mod rev above rev", build(1, 1, 0, KV{Key: "a", CreateRev: 1, ModRev: 2, Version: 1}), "out of order"},
		{"zero version", build(1, 1, 0, KV{Key: "a", CreateRev: 1, ModRev: 1}), "version 0"},
		{"empty key", build(1, 1, 0, KV{CreateRev: 1, ModRev: 1, Version: 1}), "empty key"},
		{"bad owner", build(1, 1, 0, KV{Key: "a", CreateRev: 1, ModRev: 1, Version: 1, Owner: "a/b"}), "bad owner"},
		{"owned export", build(1, 1, 0, KV{Key: ExportPrefix + "n/k/n", CreateRev: 1, ModRev: 1, Version: 1, Owner: "n"}), "owner"},
		{"bad sema", build(1, 1, 1, kv(SemaPrefix+"s", "junk")), "semaphore"},
		{"empty sema", build(1, 1, 1, KV{Key: SemaPrefix + "s", Value: sema(SemaState{Count: 1}), CreateRev: 1, ModRev: 1, Version: 1}), "no holders"},
		{"sema over count", build(1, 1, 1, KV{Key: SemaPrefix + "s", Value: sema(SemaState{Count: 1, Holders: []Slot{{"n", "a", 1}, {"n", "b", 1}}}), CreateRev: 1, ModRev: 1, Version: 1}), "2 holders"},
		{"sema token ahead", build(1, 1, 1, KV{Key: SemaPrefix + "s", Value: sema(SemaState{Count: 1, Holders: []Slot{{"n", "a", 7}}}), CreateRev: 1, ModRev: 1, Version: 1}), "token 7"},
		{"sema waiting needlessly", build(1, 1, 1, KV{Key: SemaPrefix + "s", Value: sema(SemaState{Count: 2, Holders: []Slot{{"n", "a", 1}}, Waiters: []Slot{{"n", "b", 0}}}), CreateRev: 1, ModRev: 1, Version: 1}), "slots are free"},
		{"huge key", hugeKeySnapshot(), "limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			richState(h)
			before := h.snapshot()
			err := h.f.Restore(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Restore = %v, want an error containing %q", err, tc.err)
			}
			if !bytes.Equal(h.snapshot(), before) {
				t.Fatal("a failed Restore changed the state")
			}
		})
	}
}

// hugeKeySnapshot claims a key of 4 GiB; Restore must not allocate it.
func hugeKeySnapshot() []byte {
	var buf bytes.Buffer
	buf.WriteByte(snapshotFormat)
	e := msgpack.NewEncoder(&buf)
	_ = e.EncodeArrayLen(4)
	for _, v := range []uint64{1, 1, 0, 1} {
		_ = e.EncodeUint(v)
	}
	_ = e.EncodeArrayLen(6)
	buf.Write([]byte{0xdb, 0xff, 0xff, 0xff, 0xff}) // str32 of 4 GiB - 1
	return buf.Bytes()
}

// A snapshot older than what the state machine has applied changes
// nothing (raft may install one snapshot twice on a follower that has
// applied more since the first: restoring it would take the follower's
// state, its reads and its watchers back in time); the entries after it
// that raft hands over again are refused as applied already.
func TestRestoreOfOlderSnapshotKeepsNewerState(t *testing.T) {
	h := newHarness(t, Options{})
	h.apply(put("a", "1"))
	old := h.snapshot()
	h.apply(put("a", "2"), put("b", "3"))
	wantKeys, wantRev := h.f.List("", 0)
	applied := h.f.Applied()
	if err := h.f.Restore(bytes.NewReader(old)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if gotKeys, gotRev := h.f.List("", 0); !reflect.DeepEqual(gotKeys, wantKeys) || gotRev != wantRev || h.f.Applied() != applied {
		t.Fatalf("after restoring an older snapshot: keys %+v at rev %d, applied %d; want %+v at %d, applied %d",
			gotKeys, gotRev, h.f.Applied(), wantKeys, wantRev, applied)
	}
	if evs := h.events(0, ""); len(evs) == 0 {
		t.Error("the event history was cleared")
	}
	if _, err := h.f.Apply(applied, nil); err == nil {
		t.Error("an entry applied already was applied again")
	}
}
