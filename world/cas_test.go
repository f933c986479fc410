package world_test

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// PutIfRev and DeleteIfRev write only at the key's revision, through any
// node; a failed compare reports the key as it is on the node that made
// it, never older than what the compare saw.
func TestIfRevWritesOnlyAtTheKeysRevisionFromAnyNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		r1, _ := ws[0].Put(ctx, "k", []byte("v1"))
		r2, err := ws[0].Put(ctx, "k", []byte("v2"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ws[2].PutIfRev(ctx, "k", r1, []byte("v3"))
		if err != nil || s.Applied || !s.Found || string(s.Current.Value) != "v2" || s.Current.ModRev != r2 || s.Rev < r2 {
			t.Fatalf("put at the stale revision %d: %+v %v, want not applied, v2 at %d", r1, s, err, r2)
		}
		s, err = ws[1].PutIfRev(ctx, "k", r2, []byte("v3"))
		if err != nil || !s.Applied || s.Rev <= r2 {
			t.Fatalf("put at the key's revision: %+v %v", s, err)
		}
		r3 := s.Rev
		// ws[2] may not have applied ws[1]'s put when it is asked: the
		// answer still shows it.
		s, err = ws[2].DeleteIfRev(ctx, "k", r2)
		if err != nil || s.Applied || string(s.Current.Value) != "v3" || s.Current.ModRev != r3 {
			t.Fatalf("delete at the old revision %d: %+v %v, want not applied, v3 at %d", r2, s, err, r3)
		}
		if s, err = ws[2].DeleteIfRev(ctx, "k", r3); err != nil || !s.Applied {
			t.Fatalf("delete at the key's revision: %+v %v", s, err)
		}
		s, err = ws[0].PutIfRev(ctx, "k", r3, []byte("v4"))
		if err != nil || s.Applied || s.Found {
			t.Fatalf("put of a deleted key at its last revision: %+v %v, want not applied, not found", s, err)
		}
		if s, err = ws[0].PutIfRev(ctx, "k", 0, []byte("v4")); err != nil || !s.Applied {
			t.Fatalf("put of a missing key at revision 0: %+v %v", s, err)
		}
		if kv, _, _ := ws[1].Get(ctx, "k", world.Linearizable()); string(kv.Value) != "v4" || kv.ModRev != s.Rev {
			t.Errorf("the key is %q at %d, want v4 at %d", kv.Value, kv.ModRev, s.Rev)
		}
		if _, err := ws[0].PutIfRev(ctx, fsm.InternalPrefix+"x", 0, nil); !errors.Is(err, world.ErrReserved) {
			t.Errorf("a conditional write of a reserved key: %v", err)
		}
		if _, err := ws[0].DeleteIfRev(ctx, fsm.SemaPrefix+"x", 0); !errors.Is(err, world.ErrReserved) {
			t.Errorf("a conditional delete of a reserved key: %v", err)
		}
	})
}
