package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// What hashicorp/raft does when its stores cannot write (raft 1.7): a
// leader whose StoreLogs fails answers the entries' futures with the
// error and steps down (it may win the next election and fail again,
// hashicorp/raft#614); a follower whose StoreLogs fails refuses the
// append, and the leader retries it with a backoff; but a node that
// cannot record a new term in its stable store panics (raft.go,
// setCurrentTerm), which would take the agent down with it. So the
// node's stores are wrapped (spaceStore): a write that fails for want of
// space says so, naming the data dir, and the node remembers the disk is
// full until a write succeeds; and recording a new term waits, retrying,
// until space returns rather than fail. Meanwhile the node neither leads
// nor votes; the rest of the cluster goes on without it. Once the node
// closes, the term is given up as recorded, so that raft's loop runs on
// to answer what waits on it and to stop: it cannot vote in the term (a
// vote is recorded in the same store, and raft casts none it could not
// record), and the node stops.

// termKey is the stable-store key raft records its current term under.
const termKey = "CurrentTerm"

// spaceRetry is how often a term that could not be recorded for want of
// space is tried again.
const spaceRetry = 200 * time.Millisecond

// spaceStore is the node's raft log and stable store, telling writes that
// fail for want of space apart.
type spaceStore struct {
	raftStore
	dataDir string
	ctx     context.Context // the node's: a term still waiting for space when it ends is given up as recorded
	log     *slog.Logger

	mu   sync.Mutex
	full error // why the last write failed, while the disk is full
}

// noSpace returns ErrNoSpace's error while the last write failed for want
// of space, else nil.
func (s *spaceStore) noSpace() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

// note records the outcome of a write and returns its error, saying so
// when it failed for want of space.
func (s *spaceStore) note(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		if s.full != nil {
			s.log.Info("the data dir accepts writes again", "data_dir", s.dataDir)
		}
		s.full = nil
		return nil
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		if s.full == nil {
			s.log.Error("the data dir is full: writes fail until space is freed", "data_dir", s.dataDir, "err", err)
		}
		s.full = fmt.Errorf("%w %s (free space there; the node accepts writes again once it can write): %w",
			ErrNoSpace, s.dataDir, err)
		return s.full
	}
	return err
}

func (s *spaceStore) StoreLog(l *raft.Log) error { return s.note(s.raftStore.StoreLog(l)) }

func (s *spaceStore) StoreLogs(logs []*raft.Log) error { return s.note(s.raftStore.StoreLogs(logs)) }

func (s *spaceStore) DeleteRange(lo, hi uint64) error { return s.note(s.raftStore.DeleteRange(lo, hi)) }

func (s *spaceStore) Set(k, v []byte) error { return s.note(s.raftStore.Set(k, v)) }

// SetUint64 records a value; raft's current term, which raft panics on
// failing to record, is retried for as long as the disk is full.
func (s *spaceStore) SetUint64(k []byte, v uint64) error {
	err := s.note(s.raftStore.SetUint64(k, v))
	if err == nil || !errors.Is(err, ErrNoSpace) || string(k) != termKey {
		return err
	}
	s.log.Error("raft cannot record its new term for want of space: the node neither leads nor votes until "+
		"space is freed", "data_dir", s.dataDir, "term", v)
	t := time.NewTicker(spaceRetry)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.log.Warn("closing: raft's new term was not recorded for want of space", "data_dir", s.dataDir, "term", v)
			return nil // see spaceStore
		case <-t.C:
		}
		if err := s.note(s.raftStore.SetUint64(k, v)); err == nil || !errors.Is(err, ErrNoSpace) {
			return err
		}
	}
}

// noSpace returns why the node's last write to its data dir failed while
// that dir is full, nil if it is not (or the node keeps no data dir).
func (n *Node) noSpace() error {
	if n.space == nil {
		return nil
	}
	return n.space.noSpace()
}

// soleVoter reports whether this node is the only voter of its raft
// configuration: then no other node leads while it cannot.
func (n *Node) soleVoter() bool {
	servers, err := n.Configuration()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			return false
		}
	}
	return true
}
