package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func addSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{batchFormat})
	f.Add([]byte{batchFormat, 0x90})
	f.Add([]byte{batchFormat, 0x91, 0xc0})
	f.Add([]byte{batchFormat, 0x91, 0x81, 0xa1, 'k', 0xdb, 0x7f, 0xff, 0xff, 0xff})
	f.Add(mustEncode(f, fullCommand()))
	f.Add(mustEncode(f, put("a", "1"), eput("n1", "e", "2"), acquire("s", 1, "n1", "h")))
	for _, e := range randomEntries(99, 16) {
		f.Add(e)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// What decodes encodes again (unless the canonical form, which
		// writes every op, outgrows the entry limit) and decodes alike.
		again, err := EncodeBatch(cmds)
		if err != nil {
			if errors.Is(err, ErrTooLarge) && len(data) > MaxEntrySize-4*MaxEntryOps {
				return
			}
			t.Fatalf("EncodeBatch of a decoded batch: %v", err)
		}
		cmds2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("DecodeBatch of a re-encoded batch: %v", err)
		}
		if !reflect.DeepEqual(cmds, cmds2) {
			t.Fatalf("re-encoding changed the batch:\n%+v\n%+v", cmds, cmds2)
		}
	})
}

func FuzzApply(f *testing.F) {
	addSeeds(f)
	prefix := randomEntries(7, 10)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fsms [2]*FSM
		var results [2][]Result
		for i := range fsms {
			fsms[i] = New(Options{History: 16})
			for j, e := range prefix {
				if _, err := fsms[i].Apply(uint64(j+1), e); err != nil {
					t.Fatalf("prefix entry %d: %v", j, err)
				}
			}
			var err error
			results[i], err = fsms[i].Apply(uint64(len(prefix)+1), data)
			if err == nil && len(data) > 0 {
				if cmds, _ := DecodeBatch(data); len(results[i]) != len(cmds) {
					t.Fatalf("%d results for %d commands", len(results[i]), len(cmds))
				}
			}
		}
		if !reflect.DeepEqual(results[0], results[1]) {
			t.Fatalf("results differ:\n%+v\n%+v", results[0], results[1])
		}
		snap := persist(t, fsms[0])
		if !bytes.Equal(snap, persist(t, fsms[1])) {
			t.Fatal("snapshots differ")
		}
		checkInvariants(t, fsms[0])
		r := New(Options{})
		if err := r.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("Restore of a snapshot: %v", err)
		}
		if !bytes.Equal(persist(t, r), snap) {
			t.Fatal("restored state persists differently")
		}
	})
}

// FuzzRestore restores a persisted snapshot, as a follower does with the
// one its leader sends and a node with the one on its disk. Whatever the
// bytes: no panic; no more allocated than a constant times their length
// and some room; an error that says it is the snapshot's; and a state
// that is restored persists to a snapshot that restores to the same.
func FuzzRestore(f *testing.F) {
	for _, seed := range []uint64{1, 7, 99} {
		s := New(Options{})
		for j, e := range randomEntries(seed, 12) {
			if _, err := s.Apply(uint64(j+1), e); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(persist(f, s))
	}
	f.Add(persist(f, New(Options{})))
	f.Add([]byte{snapshotFormat})
	// A semaphore whose holders' array announces more than the value
	// holds: 65,535, and 2^31-1.
	f.Add(semaSnapshot(f, []byte{0x82, 0xa1, 'c', 1, 0xa1, 'h', 0xdc, 0xff, 0xff}))
	f.Add(semaSnapshot(f, []byte{0x82, 0xa1, 'c', 1, 0xa1, 'h', 0xdd, 0x7f, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(Options{})
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = s.Restore(bytes.NewReader(data))
		runtime.ReadMemStats(&after)
		if n, bound := after.TotalAlloc-before.TotalAlloc, 256*uint64(len(data))+1<<20; n > bound {
			t.Fatalf("restoring %d bytes allocated %d, over %d", len(data), n, bound)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "restore snapshot: ") {
				t.Fatalf("error %q does not say it is the snapshot's", err)
			}
			return
		}
		checkInvariants(t, s)
		snap := persist(t, s)
		r := New(Options{})
		if err := r.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("a restored state's snapshot does not restore: %v", err)
		}
		if !bytes.Equal(persist(t, r), snap) {
			t.Fatal("a restored state's snapshot restores to another state")
		}
	})
}

// semaSnapshot is a snapshot of one semaphore key whose value is value.
func semaSnapshot(tb testing.TB, value []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(snapshotFormat)
	w := writer{e: msgpack.NewEncoder(&b)}
	w.arrayLen(4)
	w.uint(1)
	w.uint(1)
	w.uint(1)
	w.uint(1)
	w.arrayLen(6)
	w.str(SemaPrefix + "s")
	w.bytes(value)
	w.uint(1)
	w.uint(1)
	w.uint(1)
	w.str("")
	if w.err != nil {
		tb.Fatal(w.err)
	}
	return b.Bytes()
}
