package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
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
