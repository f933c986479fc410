package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// Damage found while the node runs (raft.db changed under it: a page
// overwritten, the file cut short). bbolt panics on a page it cannot read
// (it checks each page's id) and faults reading past the end of its
// memory-mapped file, on whichever goroutine calls it: raft's own. And
// raft (1.7) panics itself on two errors of its stores: a log entry it
// cannot read back to apply it (processLogs; liveBootstrap for the first)
// and a term it cannot record (setCurrentTerm). Recovering the panic into
// an error is not enough, then.
//
// So the node's store in its data dir (damageStore) turns a panic or a
// fault, and a log entry that is there but does not read back, into
// ErrDamagedState's error, naming raft.db and the way to recover, once
// (damageLatch): Damaged closes, for the node's owner to close it. From
// then on every call of the store fails with that error, which raft
// handles (a leader that cannot store an entry steps down, a follower
// refuses the entries, a vote that cannot be recorded is not cast),
// except the two raft would panic on: those wait until the node closes
// (its FSM stops moving meanwhile, as a node behind), then return what
// raft can go on with, so that raft still answers, as a follower, what
// the node's calls wait for while it closes: a term "recorded" (raft can
// cast no vote in it: a vote is not recorded either), an entry read as a
// no-op (the FSM, being closed, is no longer read). The callers raft
// panics for are told apart by raft's function on the call stack.
//
// A call made while raft starts, before NewRaft returns, is the
// caller's goroutine: it fails, and start fails with it as with damage
// found at start.

// damageLatch records the first damage the store met while the node ran.
type damageLatch struct {
	raftDir, db string
	log         *slog.Logger
	ctx         context.Context // the node's: parked calls return when it ends
	running     atomic.Bool     // raft has started: its calls may be parked

	mu   sync.Mutex
	err  error
	done chan struct{} // closed once err is set
}

func newDamageLatch(ctx context.Context, log *slog.Logger) *damageLatch {
	return &damageLatch{ctx: ctx, log: log, done: make(chan struct{})}
}

// fail records the damage err stands for, unless damage was recorded
// already.
func (l *damageLatch) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = damage(l.raftDir, l.db, "the node stopped", err)
	l.log.Error("raft state damaged while the node ran: it stops", "file", l.db, "err", l.err)
	close(l.done)
}

// failed returns the damage recorded, nil if none.
func (l *damageLatch) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// park waits until the node closes, for a raft goroutine that raft would
// panic on an error for.
func (l *damageLatch) park() { <-l.ctx.Done() }

// raft's functions (raft 1.7) that panic on an error of GetLog.
const (
	raftProcessLogs   = "github.com/hashicorp/raft.(*Raft).processLogs"
	raftLiveBootstrap = "github.com/hashicorp/raft.(*Raft).liveBootstrap"
)

// calledFrom reports whether one of the functions named is on the
// caller's stack.
func calledFrom(names ...string) bool {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	for {
		f, more := frames.Next()
		if slices.Contains(names, f.Function) {
			return true
		}
		if !more {
			return false
		}
	}
}

// damageStore is the node's raft store in its data dir, as raft sees it
// (parking raft's goroutines that meet damage) or as the node's own code
// does (getting the error).
type damageStore struct {
	raftStore
	latch *damageLatch
	raft  bool
}

// guard runs a call of the store: once damage is recorded, or if the call
// panics or faults, or if damaged makes the damage of its error, it fails
// with the damage. Other errors are returned as they are (raft compares
// some with ==).
func (s *damageStore) guard(f func() error, damaged func(error) error) error {
	if err := s.latch.failed(); err != nil {
		return err
	}
	panicked, err := recovered(f)
	if !panicked && err != nil && damaged != nil {
		if bad := damaged(err); bad != nil {
			panicked, err = true, bad // damage, as a panic is
		}
	}
	if !panicked {
		return err
	}
	s.latch.fail(err)
	return s.latch.failed()
}

// parks reports whether err is the damage and the call is one of a
// started raft's that raft panics on (panics says): it has then waited
// for the node to close.
func (s *damageStore) parks(err error, panics func() bool) bool {
	if !errors.Is(err, ErrDamagedState) || !s.raft || !s.latch.running.Load() || !panics() {
		return false
	}
	s.latch.park()
	return true
}

// badEntry returns the damage an error reading log entry index says: the
// entry is there but cannot be read back. One missing is raft's to handle,
// and a closed store is no damage: nil for those.
func badEntry(index uint64) func(error) error {
	return func(err error) error {
		if errors.Is(err, raft.ErrLogNotFound) || errors.Is(err, bbolt.ErrDatabaseNotOpen) {
			return nil
		}
		return fmt.Errorf("log entry %d: %w", index, err)
	}
}

func (s *damageStore) FirstIndex() (i uint64, err error) {
	err = s.guard(func() (err error) { i, err = s.raftStore.FirstIndex(); return err }, nil)
	return i, err
}

func (s *damageStore) LastIndex() (i uint64, err error) {
	err = s.guard(func() (err error) { i, err = s.raftStore.LastIndex(); return err }, nil)
	return i, err
}

// GetLog reads a log entry. One that raft reads to apply it, damaged, is
// read as a no-op once the node closes (see damageStore).
func (s *damageStore) GetLog(index uint64, l *raft.Log) error {
	err := s.guard(func() error { return s.raftStore.GetLog(index, l) }, badEntry(index))
	if s.parks(err, func() bool { return calledFrom(raftProcessLogs, raftLiveBootstrap) }) {
		*l = raft.Log{Index: index, Type: raft.LogNoop}
		return nil
	}
	return err
}

func (s *damageStore) StoreLog(l *raft.Log) error {
	return s.guard(func() error { return s.raftStore.StoreLog(l) }, nil)
}

func (s *damageStore) StoreLogs(logs []*raft.Log) error {
	return s.guard(func() error { return s.raftStore.StoreLogs(logs) }, nil)
}

func (s *damageStore) DeleteRange(lo, hi uint64) error {
	return s.guard(func() error { return s.raftStore.DeleteRange(lo, hi) }, nil)
}

func (s *damageStore) Set(k, v []byte) error {
	return s.guard(func() error { return s.raftStore.Set(k, v) }, nil)
}

func (s *damageStore) Get(k []byte) (v []byte, err error) {
	err = s.guard(func() (err error) { v, err = s.raftStore.Get(k); return err }, nil)
	return v, err
}

// SetUint64 records a value. Raft's current term, damaged, is given up as
// recorded once the node closes (see damageStore).
func (s *damageStore) SetUint64(k []byte, v uint64) error {
	err := s.guard(func() error { return s.raftStore.SetUint64(k, v) }, nil)
	if string(k) == termKey && s.parks(err, func() bool { return true }) {
		return nil
	}
	return err
}

func (s *damageStore) GetUint64(k []byte) (v uint64, err error) {
	err = s.guard(func() (err error) { v, err = s.raftStore.GetUint64(k); return err }, nil)
	return v, err
}

// Damaged returns a channel closed once the node found its raft state
// damaged while it ran: it no longer stores, votes or applies, and its
// owner should close it; DamageErr says what is damaged and how to
// recover. It never closes for a node without a data dir.
func (n *Node) Damaged() <-chan struct{} { return n.damage.done }

// DamageErr returns the damage the node found while it ran (an
// ErrDamagedState error naming the file and the way to recover), nil if
// none.
func (n *Node) DamageErr() error { return n.damage.failed() }
