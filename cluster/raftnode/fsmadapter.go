package raftnode

import (
	"io"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// raftFSM adapts the World's state machine to raft.
type raftFSM struct {
	f    *fsm.FSM
	reqs *requests // told the outcome of every fenced write applied
	ids  *idKeeper // keeps the cluster ID once the state machine has it
}

var _ raft.BatchingFSM = (*raftFSM)(nil)

func (a *raftFSM) Apply(l *raft.Log) any { return a.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed command entries; each response is the
// entry's []fsm.Result, or the error that kept it from decoding.
func (a *raftFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			// Move the FSM's applied index past raft's own entries too.
			_, _ = a.f.Apply(l.Index, nil)
			continue
		}
		// Outcomes are settled before the FSM's applied index moves: a
		// sender that has waited for the index must find its own.
		applied, err := a.f.ApplyEntry(l.Index, l.Term, l.Data, a.reqs.applied)
		if err != nil {
			out[i] = err
			continue
		}
		out[i] = applied.Results
	}
	a.ids.keep(a.f) // the ID applied, if the store holds another (or none)
	return out
}

// Snapshot captures the state cheaply; raft persists it on another goroutine.
func (a *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	return &raftSnapshot{s: a.f.Snapshot()}, nil
}

func (a *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	a.reqs.restores.Add(1)
	if err := a.f.Restore(rc); err != nil {
		return err
	}
	a.ids.keep(a.f)
	return nil
}

type raftSnapshot struct{ s *fsm.Snapshot }

func (r *raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := r.s.Persist(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (r *raftSnapshot) Release() { r.s.Release() }
