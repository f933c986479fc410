package world

import (
	"context"

	"github.com/graftcm/graft/fsm"
)

// Swap is the outcome of a write made on condition of the key's revision
// (PutIfRev, DeleteIfRev).
type Swap struct {
	// Applied says whether the key's ModRev was the revision asked for
	// (0: the key did not exist), so that the write was made.
	Applied bool
	// Rev is, if Applied, the revision of the write: the current revision
	// if it changed nothing (a put of the value the key held, a delete of
	// a missing key). Otherwise it is the revision this host's copy of
	// the state was at when Current was read: never older than the state
	// the compare failed on, and possibly newer.
	Rev uint64
	// Current and Found are, if not Applied, the key as it was at Rev and
	// whether it existed then: what to compare with on a retry (Found
	// false: revision 0).
	Current fsm.KV
	Found   bool
}

// PutIfRev sets key to value if the key's ModRev is rev (0: if the key
// does not exist). The compare and the put are one command, applied
// atomically.
func (w *World) PutIfRev(ctx context.Context, key string, rev uint64, value []byte) (Swap, error) {
	return w.ifRev(ctx, key, rev, fsm.Command{Op: fsm.OpPut, Key: key, Value: value})
}

// DeleteIfRev deletes key if its ModRev is rev. With rev 0 it applies
// only if the key does not exist, and then changes nothing.
func (w *World) DeleteIfRev(ctx context.Context, key string, rev uint64) (Swap, error) {
	return w.ifRev(ctx, key, rev, fsm.Command{Op: fsm.OpDelete, Key: key})
}

// ifRev applies write if key's ModRev is rev, in one transaction.
func (w *World) ifRev(ctx context.Context, key string, rev uint64, write fsm.Command) (Swap, error) {
	if err := checkUserKey(key); err != nil {
		return Swap{}, err
	}
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpTxn,
		Compares: []fsm.Compare{{Target: fsm.CompareModRev, Key: key, Rev: rev}},
		Then:     []fsm.Command{write}})
	if err != nil {
		return Swap{}, err
	}
	if res.OK {
		return Swap{Applied: true, Rev: res.Rev}, nil
	}
	// apply waited for the local copy to reach the compare's revision. A
	// list of the key as prefix, limited to one key, reads the key (the
	// first key with that prefix, if it exists) and the revision at once.
	kvs, at := w.f.List(key, 1)
	s := Swap{Rev: at}
	if len(kvs) == 1 && kvs[0].Key == key {
		s.Current, s.Found = kvs[0], true
	}
	return s, nil
}
