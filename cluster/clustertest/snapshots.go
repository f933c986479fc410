package clustertest

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// snapshotStore keeps a host's raft snapshots in memory the way a data
// dir's snapshot directory keeps them on disk: a snapshot is listed and
// opened only once it has been written whole (its sink closed), a
// cancelled one is dropped, the latest is the one of the highest term
// and index, and the two latest are kept. raft's
// InmemSnapshotStore lists a snapshot from the moment it is created, so a
// leader could send a follower one still being written, and keeps one
// whose writing was cancelled, and calls the last one created the latest,
// though raft may install an older snapshot than a node's own (a leader's,
// a second time); a node restarted on that one found its log compacted
// past it, and raft panicked ("log not found") in the fault suite.
type snapshotStore struct {
	mu   sync.Mutex
	seq  int
	done []*memSnapshot // written whole, oldest first
}

type memSnapshot struct {
	meta raft.SnapshotMeta
	data []byte
}

func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("clustertest: snapshot version %d: only 1 is known", version)
	}
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("%d-%d-%d", term, index, s.seq)
	s.mu.Unlock()
	return &snapshotSink{s: s, meta: raft.SnapshotMeta{Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex}}, nil
}

// List returns the snapshots written whole, the latest first.
func (s *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*raft.SnapshotMeta, 0, len(s.done))
	for _, snap := range slices.Backward(s.done) {
		meta := snap.meta
		out = append(out, &meta)
	}
	return out, nil
}

func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, snap := range s.done {
		if snap.meta.ID == id {
			meta := snap.meta
			return &meta, io.NopCloser(bytes.NewReader(snap.data)), nil
		}
	}
	return nil, nil, fmt.Errorf("clustertest: no snapshot %s", id)
}

// snapshotSink is one snapshot being written.
type snapshotSink struct {
	s         *snapshotStore
	meta      raft.SnapshotMeta
	buf       bytes.Buffer
	cancelled bool
}

func (k *snapshotSink) ID() string { return k.meta.ID }

func (k *snapshotSink) Write(p []byte) (int, error) {
	n, err := k.buf.Write(p)
	k.meta.Size += int64(n)
	return n, err
}

// Close keeps the snapshot, unless it was cancelled.
func (k *snapshotSink) Close() error {
	if k.cancelled {
		return nil
	}
	s := k.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = append(s.done, &memSnapshot{meta: k.meta, data: bytes.Clone(k.buf.Bytes())})
	// As raft's file store, by term, then index: an older snapshot
	// written last (one installed twice) is not the latest.
	slices.SortStableFunc(s.done, func(a, b *memSnapshot) int {
		if c := cmp.Compare(a.meta.Term, b.meta.Term); c != 0 {
			return c
		}
		return cmp.Compare(a.meta.Index, b.meta.Index)
	})
	if len(s.done) > 2 {
		s.done = slices.Delete(s.done, 0, len(s.done)-2)
	}
	return nil
}

// Cancel drops the snapshot.
func (k *snapshotSink) Cancel() error {
	k.cancelled = true
	return nil
}
