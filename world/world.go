// Package world is the cluster-wide state graft's engine and resources share:
// keys read, written and watched without missing an event, per-host values,
// exported resources and counting semaphores, all kept in the replicated
// state machine (package fsm).
//
// Reads and watches are served by the local node's copy of the state; a read
// that must reflect every write committed anywhere asks for Linearizable.
// Writes go through the cluster's leader from any node. After a write
// returns, reads on the same node see it (read your writes).
package world

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/graftcm/graft/fsm"
)

// Backend is what the World needs from a cluster node. *raftnode.Node
// satisfies it.
type Backend interface {
	// Apply applies commands through the leader.
	Apply(ctx context.Context, cmds []fsm.Command) ([]fsm.Result, error)
	// Linearize returns once the local state reflects every write
	// committed before the call.
	Linearize(ctx context.Context) error
	// WaitApplied returns once the local node has applied the log up to
	// index.
	WaitApplied(ctx context.Context, index uint64) error
	// FSM is the local copy of the state.
	FSM() *fsm.FSM
	// LeaderContact is when the node last heard from a leader (if it
	// leads, when a majority of the voters last answered it).
	LeaderContact() time.Time
}

// DefaultLeaseTimeout is how long a host may go without hearing from the
// cluster's leader before it treats its semaphore slots as lost. It must be
// shorter than the time the cluster takes to release a silent host's slots
// (its death declared, then a release grace): seconds on a LAN.
const DefaultLeaseTimeout = 2 * time.Second

// ErrReserved is returned for writes to keys under fsm.InternalPrefix, which
// only graft itself changes, through the World's typed calls.
var ErrReserved = errors.New("world: keys under " + fsm.InternalPrefix + " are graft's own")

// ErrRefused is matched by the error of a command the state machine
// refused as invalid (a semaphore asked for with another count than it
// has, an export set naming one resource twice, a key too large...): it
// changed nothing, on any replica, and asking again changes nothing
// either. The error's message says what was wrong (see RefusedError).
var ErrRefused = errors.New("world: the state machine refused the command")

// RefusedError is the error of a command the state machine refused; it
// matches ErrRefused.
type RefusedError struct {
	// Reason is the state machine's explanation, the same on every
	// replica.
	Reason string
}

func (e *RefusedError) Error() string { return "world: refused: " + e.Reason }

// Is makes a RefusedError match ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// World is one host's handle on the cluster-wide state.
type World struct {
	b       Backend
	f       *fsm.FSM
	host    string
	log     *slog.Logger
	nonce   string        // distinguishes this process's semaphore holders
	seq     atomic.Uint64 // numbers them
	holders *holders      // the holders this process owns
	watches *watchSet     // the running watches, for WatchStats
	// leaseTimeout is how long this host may go without hearing from a
	// leader before its leases count as lost.
	leaseTimeout time.Duration
}

// Option changes how New makes a World.
type Option func(*World)

// WithLeaseTimeout sets how long the host may go without hearing from the
// cluster's leader before it treats its semaphore slots as lost
// (DefaultLeaseTimeout if not given): shorter than the time the cluster
// takes to release a silent host's slots.
func WithLeaseTimeout(d time.Duration) Option { return func(w *World) { w.leaseTimeout = d } }

// New returns the World of host, on backend b. Logger may be nil.
func New(b Backend, host string, log *slog.Logger, opts ...Option) (*World, error) {
	if host == "" || strings.ContainsAny(host, "/ \t\n") || len(host) > fsm.MaxNameSize {
		return nil, fmt.Errorf("world: host name %q: want 1 to %d characters, no slashes or spaces", host, fsm.MaxNameSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var buf [6]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	w := &World{b: b, f: b.FSM(), host: host, log: log, nonce: hex.EncodeToString(buf[:]), holders: newHolders(),
		watches: newWatchSet(), leaseTimeout: DefaultLeaseTimeout}
	for _, o := range opts {
		o(w)
	}
	if w.leaseTimeout <= 0 {
		return nil, fmt.Errorf("world: lease timeout %v: want a positive duration", w.leaseTimeout)
	}
	return w, nil
}

// Host returns the name of the host this World belongs to.
func (w *World) Host() string { return w.host }

// Rev returns the revision of the local state.
func (w *World) Rev() uint64 { return w.f.Rev() }

// ReadOption changes how a read is served.
type ReadOption func(*readOpts)

type readOpts struct{ linearizable bool }

// Linearizable makes a read reflect every write committed anywhere before
// it (it asks the leader, so it costs a round trip).
func Linearizable() ReadOption { return func(o *readOpts) { o.linearizable = true } }

func (w *World) prepareRead(ctx context.Context, opts []ReadOption) error {
	var o readOpts
	for _, fn := range opts {
		fn(&o)
	}
	if o.linearizable {
		return w.b.Linearize(ctx)
	}
	return nil
}

// apply applies one command and waits until the local state has it.
func (w *World) apply(ctx context.Context, cmd fsm.Command) (fsm.Result, error) {
	res, err := w.b.Apply(ctx, []fsm.Command{cmd})
	if err != nil {
		return fsm.Result{}, err
	}
	if len(res) != 1 {
		return fsm.Result{}, fmt.Errorf("world: %d results for one command", len(res))
	}
	if res[0].Err != "" {
		return res[0], &RefusedError{Reason: res[0].Err}
	}
	if err := w.b.WaitApplied(ctx, res[0].Rev); err != nil {
		return res[0], err
	}
	return res[0], nil
}

func checkUserKey(key string) error {
	if key == "" {
		return errors.New("world: empty key")
	}
	if strings.HasPrefix(key, fsm.InternalPrefix) {
		return ErrReserved
	}
	return nil
}

// Get returns the value of key and whether it exists.
func (w *World) Get(ctx context.Context, key string, opts ...ReadOption) (fsm.KV, bool, error) {
	if err := w.prepareRead(ctx, opts); err != nil {
		return fsm.KV{}, false, err
	}
	kv, ok := w.f.Get(key)
	return kv, ok, nil
}

// List returns the keys under prefix, sorted, and the revision they are
// current at (watch from it to follow them).
func (w *World) List(ctx context.Context, prefix string, opts ...ReadOption) ([]fsm.KV, uint64, error) {
	if err := w.prepareRead(ctx, opts); err != nil {
		return nil, 0, err
	}
	kvs, rev := w.f.List(prefix, 0)
	return kvs, rev, nil
}

// Put sets key to value and returns the revision of the change (the
// current revision if the value was already there).
func (w *World) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := checkUserKey(key); err != nil {
		return 0, err
	}
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpPut, Key: key, Value: value})
	return res.Rev, err
}

// Delete deletes key.
func (w *World) Delete(ctx context.Context, key string) (uint64, error) {
	if err := checkUserKey(key); err != nil {
		return 0, err
	}
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpDelete, Key: key})
	return res.Rev, err
}

// DeletePrefix deletes every key under prefix.
func (w *World) DeletePrefix(ctx context.Context, prefix string) (uint64, error) {
	if err := checkUserKey(prefix); err != nil {
		return 0, err
	}
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpDeletePrefix, Key: prefix})
	return res.Rev, err
}

// CompareAndSwap sets key to value if it holds old (nil old: if it does not
// exist), atomically. It reports whether it did.
func (w *World) CompareAndSwap(ctx context.Context, key string, old, value []byte) (bool, uint64, error) {
	if err := checkUserKey(key); err != nil {
		return false, 0, err
	}
	cmp := fsm.Compare{Target: fsm.CompareValue, Key: key, Value: old}
	if old == nil {
		cmp = fsm.Compare{Target: fsm.CompareAbsent, Key: key}
	}
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpTxn, Compares: []fsm.Compare{cmp},
		Then: []fsm.Command{{Op: fsm.OpPut, Key: key, Value: value}}})
	return res.OK, res.Rev, err
}

// CompareRevAndSwap sets key to value if its ModRev is rev (0: it does not
// exist), atomically. It reports whether it did, and the revision of the
// write, or the revision Swap.Rev names if it did not (see PutIfRev).
func (w *World) CompareRevAndSwap(ctx context.Context, key string, rev uint64, value []byte) (bool, uint64, error) {
	s, err := w.PutIfRev(ctx, key, rev, value)
	return s.Applied, s.Rev, err
}

// Linearize returns once the local state reflects every write committed
// anywhere before the call.
func (w *World) Linearize(ctx context.Context) error { return w.b.Linearize(ctx) }
