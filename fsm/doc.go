// Package fsm is the World's state machine: a revisioned key space, with
// cluster-wide counting semaphores, exported resources and per-host values
// built on it, changed only by commands applied in raft log order.
//
// Apply is deterministic: no clocks, no randomness, no I/O. Every replica
// that applies the same entries holds the same state, revision for revision.
//
// # Commands
//
// A writer builds Commands (command.go documents each Op), encodes a batch
// of them with EncodeBatch and proposes the bytes to raft; every replica
// hands the committed entry to Apply, which decodes it (DecodeBatch treats
// it as untrusted) and returns one Result per command. A command that is
// invalid fails alone, with Result.Err, and changes nothing; the others in
// the batch still apply. An entry that does not decode changes nothing.
//
// # Revisions
//
// The revision of a change is the raft index of the log entry that made it;
// the commands batched into one entry share it. A command that changes
// nothing (a put of the value already there, a delete of a missing key)
// produces no event and does not move the revision. Readers see an entry
// whole or not at all: List returns keys and the revision they belong to.
//
// # Watching
//
// The FSM keeps a bounded history of recent events. A watcher asks for the
// events after the last revision it has seen (Events) and waits for new ones
// (Changed); Apply never waits for a watcher. A watcher that fell behind the
// history gets a *CompactedError carrying the current revision, re-lists
// and carries on from there:
//
//	kvs, rev := f.List(prefix, 0)
//	for {
//		changed := f.Changed() // before Events, so no change slips by
//		evs, through, err := f.Events(rev, prefix, 1000)
//		if errors.Is(err, fsm.ErrCompacted) {
//			kvs, rev = f.List(prefix, 0) // start again from the keys
//			continue
//		}
//		rev = through
//		if len(evs) > 0 {
//			continue // handle evs; there may be more
//		}
//		select {
//		case <-changed:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// # Semaphores
//
// OpSemaAcquire grants a free slot at once or queues the holder; releases
// and node expiry grant freed slots to the queue in order. Every grant
// carries a fencing token that increases in log order, and the state is
// stored as a msgpack SemaState under SemaPrefix+id, so a waiter learns of
// its grant by watching that key.
//
// # Snapshots
//
// Snapshot clones the key space copy-on-write in O(1) on the apply
// goroutine; Persist then streams it from any goroutine while Apply goes
// on. Restore reads a persisted snapshot in full, checks it, and only then
// replaces the state. The event history does not survive a Restore.
//
// # Internal keys
//
// Keys under "_graft/" belong to graft itself: semaphore state under
// "_graft/sema/", exported resources under "_graft/export/<node>/", per-host
// values under "_graft/host/<namespace>/<node>". They are ordinary keys, so
// they can be read, listed and watched like any other.
package fsm
