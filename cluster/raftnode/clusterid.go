package raftnode

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/fsm"
)

// A node that restarts on raft state must know its cluster's ID from the
// start: until it does, it joins nobody and nobody lets it in (see
// package cluster's compatible), since a node of another cluster would
// take it for a fresh one and add it, log and all, to its raft. The state machine has the ID
// only once raft has replayed the log, which takes a leader, so the ID is
// also kept beside raft's state (see storedClusterID): as soon as the
// state machine holds it (idKeeper), and, for a data dir whose node was
// killed before that or written by a graft that kept it only on a timer,
// read back at start from the state itself (RecoverClusterID), and kept
// once applied.

// ClusterIDKey holds the cluster's ID in the state machine, written once by
// the first leader.
const ClusterIDKey = fsm.InternalPrefix + "cluster-id"

// idKeeper keeps the cluster ID in raft's stable store as soon as the
// state machine holds it. It is used on raft's FSM goroutine only (and by
// NewRaft before that goroutine starts).
type idKeeper struct {
	stable raft.StableStore
	log    *slog.Logger
	kept   string // the ID in the stable store
}

// keep stores the ID f holds, if it holds one the store does not.
func (k *idKeeper) keep(f *fsm.FSM) {
	kv, ok := f.Get(ClusterIDKey)
	if !ok || len(kv.Value) == 0 || string(kv.Value) == k.kept {
		return
	}
	if err := k.stable.Set([]byte(clusterIDStableKey), kv.Value); err != nil {
		k.log.Warn("could not keep the cluster ID beside the raft state", "err", err)
		return
	}
	k.kept = string(kv.Value)
}

// RecoverClusterID returns the cluster ID of a node that started on raft
// state, reading it from that state if it was not kept beside it: from
// the state machine, which holds the snapshot raft restored (the idKeeper
// kept it then), or else from the log. It returns "" if neither holds it
// (the cluster's first leader had not written it yet). An ID read from
// the log is the node's until it applies its log, and is not kept: the
// entry that wrote it may never have been committed, and only the
// idKeeper, which keeps what the state machine applies, writes the ID
// kept.
func (n *Node) RecoverClusterID() (string, error) {
	if id := n.storedClusterID(); id != "" {
		return id, nil
	}
	if kv, ok := n.fsm.Get(ClusterIDKey); ok && len(kv.Value) > 0 {
		return string(kv.Value), nil
	}
	id, err := clusterIDInLog(n.logs)
	if err != nil {
		return "", fmt.Errorf("cluster: reading the cluster ID from the raft log: %w", err)
	}
	if id != "" {
		n.log.Info("the cluster ID was not kept beside this node's raft state: read from its raft log, and kept "+
			"once the node applies the log", "cluster_id", id)
	}
	return id, nil
}

// clusterIDInLog returns the cluster ID the first entry of logs that
// records one wrote, "" if none does. Only the first counts: the ID is
// written once (later attempts, by leaders that had not applied it yet,
// fail their compare), and an entry of the log that follows one not
// committed is not committed either.
func clusterIDInLog(logs raft.LogStore) (string, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return "", err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return "", err
	}
	for i := max(first, 1); i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); errors.Is(err, raft.ErrLogNotFound) {
			continue
		} else if err != nil {
			return "", err
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		if id := clusterIDInEntry(l.Data, l.Term); id != "" {
			return id, nil
		}
	}
	return "", nil
}

// clusterIDInEntry returns the cluster ID the log entry data, appended in
// term, writes, if it writes one: a put of ClusterIDKey, alone or as a
// transaction's, that no fence of another term guards.
func clusterIDInEntry(data []byte, term uint64) string {
	cmds, err := fsm.DecodeBatch(data)
	if err != nil {
		return ""
	}
	fenced := false
	for _, c := range cmds {
		switch {
		case c.Op == fsm.OpFence:
			fenced = c.Term != term
		case fenced:
		case c.Op == fsm.OpPut && c.Key == ClusterIDKey:
			return string(c.Value)
		case c.Op == fsm.OpTxn:
			for _, t := range c.Then {
				if t.Op == fsm.OpPut && t.Key == ClusterIDKey {
					return string(t.Value)
				}
			}
		}
	}
	return ""
}

// clusterIDStableKey keeps the cluster ID in raft's stable store (beside
// raft's own keys), so that a node restarting on its state gossips its
// cluster's ID from the start: the state machine has it only once raft
// has replayed the log, and meanwhile a node of another cluster would take
// the node for a fresh one and add it to raft.
const clusterIDStableKey = "graft-cluster-id"

// storedClusterID returns the cluster ID kept in the stable store, "" if
// none.
func (n *Node) storedClusterID() string {
	b, err := n.stable.Get([]byte(clusterIDStableKey))
	if err != nil {
		return ""
	}
	return string(b)
}

// stateKeyStableKey keeps, beside raft's state, the fingerprint of the
// cluster key the state was made under (see RecordStateKey).
const stateKeyStableKey = "graft-state-key-fingerprint"

// RecordStateKey records, beside raft's state, the fingerprint of the
// cluster key the state is made under.
func (n *Node) RecordStateKey(fingerprint string) error {
	return n.stable.Set([]byte(stateKeyStableKey), []byte(fingerprint))
}

// StateKeyFingerprint returns the fingerprint RecordStateKey recorded, ""
// if none.
func (n *Node) StateKeyFingerprint() string {
	b, err := n.stable.Get([]byte(stateKeyStableKey))
	if err != nil {
		return ""
	}
	return string(b)
}
