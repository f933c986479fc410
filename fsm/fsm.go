package fsm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
)

// Options configures an FSM. The zero value is ready to use.
type Options struct {
	// History is how many events are kept for watchers; 0 (or less)
	// means DefaultHistory. Whole revisions are dropped, oldest first,
	// to stay within it, so a revision with more events than History
	// is not kept at all.
	History int
	// Logger receives the FSM's few log records; nil discards them.
	Logger *slog.Logger
}

// FSM is the replicated state machine. Apply, Snapshot and Restore must be
// called from one goroutine (raft's apply loop); everything else is safe
// from any goroutine, concurrently with them.
//
// Slices in returned values (KV.Value and the like) are shared with the
// FSM, which never modifies them: read them, do not write them.
type FSM struct {
	log *slog.Logger

	// mu guards the state below; Apply holds it for a whole entry, so a
	// reader sees entries entirely or not at all.
	mu    sync.RWMutex
	tree  *btree.BTreeG[KV]
	owned *btree.BTreeG[ownedKey] // ephemeral keys by owner
	rev   uint64
	token uint64 // last fencing token given
	hist  history

	applied atomic.Uint64

	// sigMu guards the wake-up channels, created when first asked for
	// and closed (then forgotten) when what they announce happens.
	sigMu     sync.Mutex
	changed   chan struct{}
	appliedCh chan struct{}
}

// ownedKey indexes an ephemeral key by the node that owns it.
type ownedKey struct {
	owner, key string
}

const treeDegree = 32

func newTree() *btree.BTreeG[KV] {
	return btree.NewG(treeDegree, func(a, b KV) bool { return a.Key < b.Key })
}

func newOwned() *btree.BTreeG[ownedKey] {
	return btree.NewG(treeDegree, func(a, b ownedKey) bool {
		if a.owner != b.owner {
			return a.owner < b.owner
		}
		return a.key < b.key
	})
}

// New returns an empty FSM.
func New(opts Options) *FSM {
	f := &FSM{
		log:   opts.Logger,
		tree:  newTree(),
		owned: newOwned(),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.hist.limit = opts.History
	if f.hist.limit <= 0 {
		f.hist.limit = DefaultHistory
	}
	return f
}

// Apply applies the batch encoded in data (by EncodeBatch) as the raft log
// entry at index and returns one Result per command, in order. Indexes must
// grow: an index not above Applied is an error and changes nothing. An entry
// that does not decode is an error too; it changes nothing but Applied,
// which moves to index. Empty data (an entry holding no commands, such as a
// raft configuration change) just moves Applied. Apply knows no term, so
// commands guarded by an OpFence never apply; raft replicas use ApplyEntry.
func (f *FSM) Apply(index uint64, data []byte) ([]Result, error) {
	a, err := f.ApplyEntry(index, 0, data, nil)
	return a.Results, err
}

// Applied is what applying one log entry did.
type Applied struct {
	// Results has one Result per command of the entry, in order.
	Results []Result
	// Requests are the entry's fenced groups (see OpFence), in order.
	Requests []Request
}

// Request is one group of commands guarded by an OpFence.
type Request struct {
	// ID is the fence's Request.
	ID string
	// Applied says whether the group applied.
	Applied bool
	// Results are the results of the group's commands, the fence's own
	// excluded.
	Results []Result
}

// ApplyEntry is Apply for the raft log entry at index, appended in term
// (which OpFence commands check). settle, if not nil, is given the entry's
// fenced groups before the entry counts as applied (before Applied moves
// and WaitApplied returns), so that whoever waits for an index and then
// looks for a group's outcome finds it. It must not block.
func (f *FSM) ApplyEntry(index, term uint64, data []byte, settle func([]Request)) (Applied, error) {
	if applied := f.applied.Load(); index <= applied {
		return Applied{}, fmt.Errorf("apply entry %d: already applied %d", index, applied)
	}
	var cmds []Command
	var err error
	if len(data) > 0 {
		cmds, err = DecodeBatch(data)
	}
	if err != nil || len(cmds) == 0 {
		f.setApplied(index)
		if err != nil {
			f.log.Warn("entry does not decode", slog.Uint64("index", index), slog.Any("err", err))
			return Applied{}, fmt.Errorf("apply entry %d: %w", index, err)
		}
		return Applied{}, nil
	}

	f.mu.Lock()
	before := f.rev
	a := applier{f: f, index: index}
	out := a.entry(cmds, term)
	moved := f.rev != before
	if moved {
		f.hist.trim()
	}
	f.mu.Unlock()

	if settle != nil && len(out.Requests) > 0 {
		settle(out.Requests)
	}
	f.setApplied(index)
	if moved {
		f.signalChanged()
	}
	return out, nil
}

// setApplied moves Applied to index and wakes WaitApplied.
func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.sigMu.Lock()
	if f.appliedCh != nil {
		close(f.appliedCh)
		f.appliedCh = nil
	}
	f.sigMu.Unlock()
}

func (f *FSM) signalChanged() {
	f.sigMu.Lock()
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	f.sigMu.Unlock()
}

// Get returns the key's value, if the key exists.
func (f *FSM) Get(key string) (KV, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tree.Get(KV{Key: key})
}

// List returns the keys starting with prefix, sorted, at most limit of them
// (limit <= 0: all), and the revision they were read at.
func (f *FSM) List(prefix string, limit int) (kvs []KV, rev uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.tree.AscendGreaterOrEqual(KV{Key: prefix}, func(kv KV) bool {
		if !strings.HasPrefix(kv.Key, prefix) {
			return false
		}
		kvs = append(kvs, kv)
		return limit <= 0 || len(kvs) < limit
	})
	return kvs, f.rev
}

// Rev returns the revision of the last change.
func (f *FSM) Rev() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.rev
}

// Applied returns the index of the last applied entry.
func (f *FSM) Applied() uint64 {
	return f.applied.Load()
}

// Sema returns the state of semaphore id, if it has holders or waiters.
func (f *FSM) Sema(id string) (SemaState, bool) {
	kv, ok := f.Get(SemaPrefix + id)
	if !ok {
		return SemaState{}, false
	}
	st, err := decodeSema(kv.Value)
	if err != nil {
		// Only Apply and a validated Restore write under SemaPrefix.
		f.log.Error("corrupt semaphore state", slog.String("id", id), slog.Any("err", err))
		return SemaState{}, false
	}
	return st, true
}

// Events returns the events after revision after whose key starts with
// prefix, in revision order, about max of them (max <= 0: all): whole
// revisions only, so more than max to finish the last one. through is the
// revision up to which the caller has now seen every matching event: the
// last revision returned when there is more to read, else Rev.
//
// If the events after after are no longer kept, or after is beyond Rev (the
// state was restored from an older snapshot), Events returns a
// *CompactedError carrying Rev: list the keys again and carry on from there.
func (f *FSM) Events(after uint64, prefix string, max int) (evs []Event, through uint64, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if after < f.hist.compacted || after > f.rev {
		return nil, 0, &CompactedError{Current: f.rev}
	}
	evs, through, more := f.hist.since(after, prefix, max)
	if !more {
		through = f.rev
	}
	return evs, through, nil
}

// Changed returns a channel closed at the next Apply that moves Rev, or at
// the next Restore. Take it before calling Events to never miss a change.
func (f *FSM) Changed() <-chan struct{} {
	f.sigMu.Lock()
	defer f.sigMu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// WaitApplied returns when Applied is index or more, or with the context's
// error when ctx is done first.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.sigMu.Lock()
		if f.applied.Load() >= index {
			f.sigMu.Unlock()
			return nil
		}
		if f.appliedCh == nil {
			f.appliedCh = make(chan struct{})
		}
		ch := f.appliedCh
		f.sigMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
