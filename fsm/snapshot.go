package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/google/btree"
	"github.com/vmihailenco/msgpack/v5"
)

// snapshotFormat is the first byte of a persisted snapshot: the version of
// the format that follows. Version 1 is msgpack: a header array [applied
// index, revision, last fencing token, number of keys], then one array
// [key, value, create rev, mod rev, version, owner] per key, in key order.
const snapshotFormat byte = 1

// Snapshot is the state at one applied index. It shares the FSM's tree
// copy-on-write, so taking it is cheap and Persist can run while Apply
// goes on.
type Snapshot struct {
	index, rev, token uint64
	tree              *btree.BTreeG[KV]
}

// Snapshot captures the current state. Call it from the apply goroutine;
// Persist may then run on any goroutine.
func (f *FSM) Snapshot() *Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &Snapshot{index: f.applied.Load(), rev: f.rev, token: f.token, tree: f.tree.Clone()}
}

// Index returns the index of the last entry applied to the snapshot's state.
func (s *Snapshot) Index() uint64 { return s.index }

// Persist writes the state to w. It holds no lock of the FSM's.
func (s *Snapshot) Persist(w io.Writer) error {
	if s.tree == nil {
		return errors.New("persist snapshot: released")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := bw.WriteByte(snapshotFormat); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	wr := writer{e: msgpack.NewEncoder(bw)}
	wr.arrayLen(4)
	wr.uint(s.index)
	wr.uint(s.rev)
	wr.uint(s.token)
	wr.uint(uint64(s.tree.Len()))
	s.tree.Ascend(func(kv KV) bool {
		wr.arrayLen(6)
		wr.str(kv.Key)
		wr.bytes(kv.Value)
		wr.uint(kv.CreateRev)
		wr.uint(kv.ModRev)
		wr.uint(kv.Version)
		wr.str(kv.Owner)
		return wr.err == nil
	})
	if wr.err == nil {
		wr.err = bw.Flush()
	}
	if wr.err != nil {
		return fmt.Errorf("persist snapshot: %w", wr.err)
	}
	return nil
}

// Release lets the snapshot's state go; Persist fails after it.
func (s *Snapshot) Release() { s.tree = nil }

// Restore replaces the whole state with a persisted snapshot. It reads r
// to the end and checks everything; on error the state is unchanged. The
// event history is cleared, so watchers behind the restored revision get a
// *CompactedError; Changed and WaitApplied wake up.
//
// A snapshot older than the state (its index below Applied) changes
// nothing: the state already holds it and the entries after it, all
// committed. Raft can hand one over, installing a leader's snapshot twice
// on a follower that has applied more since the first time; restoring it
// would take the follower's reads and watchers back in time. Raft then
// hands over the entries after it again, which Apply refuses as applied.
func (f *FSM) Restore(r io.Reader) error {
	st, err := readSnapshot(r)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if applied := f.Applied(); st.index < applied {
		f.log.Info("kept the state: the snapshot is older", slog.Uint64("index", st.index), slog.Uint64("applied", applied))
		return nil
	}
	f.mu.Lock()
	f.tree, f.owned = st.tree, st.owned
	f.rev, f.token = st.rev, st.token
	f.hist.reset(st.rev)
	f.mu.Unlock()
	f.setApplied(st.index)
	f.signalChanged()
	f.log.Info("restored snapshot", slog.Uint64("index", st.index), slog.Uint64("rev", st.rev), slog.Int("keys", st.tree.Len()))
	return nil
}

type restored struct {
	index, rev, token uint64
	tree              *btree.BTreeG[KV]
	owned             *btree.BTreeG[ownedKey]
}

func readSnapshot(r io.Reader) (*restored, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	format, err := br.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	if format != snapshotFormat {
		return nil, fmt.Errorf("unknown format %d", format)
	}
	rd := reader{d: msgpack.NewDecoder(br)}
	if n := rd.arrayLen("header", 4); n != 4 && rd.err == nil {
		return nil, fmt.Errorf("header has %d fields, want 4", n)
	}
	st := &restored{index: rd.uint("index"), rev: rd.uint("rev"), token: rd.uint("token"), tree: newTree(), owned: newOwned()}
	count := rd.uint("count")
	if rd.err != nil {
		return nil, rd.err
	}
	if st.rev > st.index {
		return nil, fmt.Errorf("revision %d above index %d", st.rev, st.index)
	}
	var last string
	for i := uint64(0); i < count; i++ {
		kv, err := readKV(&rd)
		if err == nil && i > 0 && kv.Key <= last {
			err = errors.New("keys out of order")
		}
		if err == nil {
			err = checkKV(&kv, st)
		}
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		last = kv.Key
		st.tree.ReplaceOrInsert(kv)
		if kv.Owner != "" {
			st.owned.ReplaceOrInsert(ownedKey{kv.Owner, kv.Key})
		}
	}
	if _, err := rd.d.PeekCode(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the last key")
	}
	return st, nil
}

func readKV(rd *reader) (KV, error) {
	if n := rd.arrayLen("key", 6); n != 6 && rd.err == nil {
		return KV{}, fmt.Errorf("%d fields, want 6", n)
	}
	kv := KV{
		Key:       rd.str("key", MaxKeySize),
		Value:     rd.bytes("value", MaxValueSize),
		CreateRev: rd.uint("create rev"),
		ModRev:    rd.uint("mod rev"),
		Version:   rd.uint("version"),
		Owner:     rd.str("owner", MaxNameSize),
	}
	return kv, rd.err
}

// checkKV checks a restored key against the snapshot's header.
func checkKV(kv *KV, st *restored) error {
	switch {
	case kv.Key == "":
		return errors.New("empty key")
	case kv.CreateRev == 0 || kv.CreateRev > kv.ModRev || kv.ModRev > st.rev:
		return fmt.Errorf("%q: revisions %d/%d out of order (revision %d)", kv.Key, kv.CreateRev, kv.ModRev, st.rev)
	case kv.Version == 0:
		return fmt.Errorf("%q: version 0", kv.Key)
	case kv.Owner != "" && checkNode(kv.Owner) != nil:
		return fmt.Errorf("%q: bad owner %q", kv.Key, kv.Owner)
	}
	if checkReserved(kv.Key) == nil {
		return nil
	}
	if kv.Owner != "" {
		return fmt.Errorf("%q: reserved key has an owner", kv.Key)
	}
	if strings.HasPrefix(kv.Key, SemaPrefix) {
		sema, err := decodeSema(kv.Value)
		if err != nil {
			return fmt.Errorf("%q: %w", kv.Key, err)
		}
		for _, h := range sema.Holders {
			if h.Token > st.token {
				return fmt.Errorf("%q: token %d above the last one given, %d", kv.Key, h.Token, st.token)
			}
		}
	}
	return nil
}
