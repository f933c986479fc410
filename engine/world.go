package engine

import (
	"context"
	"errors"
)

// World is the cluster-wide state resources share, as the engine hands it to
// them in Runtime.World (mgmt's World()). The engine declares it so that it
// imports no cluster code; *world.World satisfies it. Reads are served from
// this host's copy of the state; a write returns once this host's copy has
// it, so a read after it sees it.
type World interface {
	// KVGet returns key's value and whether the key exists.
	KVGet(ctx context.Context, key string) (value []byte, ok bool, err error)
	// KVPut sets key to value. Putting the value a key already holds
	// changes nothing and wakes no watcher.
	KVPut(ctx context.Context, key string, value []byte) error
	// KVDelete deletes key. Deleting a missing key is not an error.
	KVDelete(ctx context.Context, key string) error
	// KVWatch returns a channel that receives after every change of key
	// (changes made while the receiver is busy coalesce into one, never
	// none) until ctx ends; the channel is then closed. The watch is in
	// place when KVWatch returns: a change made after that is reported.
	KVWatch(ctx context.Context, key string) (<-chan struct{}, error)

	// KVHostGet returns every host's value of the per-host key (mgmt's
	// mapped keys: each host writes its own entry), by host name.
	KVHostGet(ctx context.Context, key string) (map[string][]byte, error)
	// KVHostPut sets this host's entry of key.
	KVHostPut(ctx context.Context, key string, value []byte) error
	// KVHostDelete deletes this host's entry of key.
	KVHostDelete(ctx context.Context, key string) error
	// KVHostWatch is KVWatch for every host's entry of key.
	KVHostWatch(ctx context.Context, key string) (<-chan struct{}, error)
}

// ClusterSemaphores holds the semaphores that the whole cluster shares
// (meta sema tags starting with "@@"). *world.World satisfies it.
type ClusterSemaphores interface {
	// AcquireSlot waits, until ctx ends, for a slot of semaphore id, which
	// has count slots cluster-wide. It returns the slot's fencing token
	// (increasing for the semaphore), a channel closed if the slot may have
	// been lost without release (the cluster declared this host dead, or
	// this host lost contact with the cluster's quorum), and release, which
	// gives the slot back and may be called more than once.
	AcquireSlot(ctx context.Context, id string, count int64) (token uint64, lost <-chan struct{},
		release func(context.Context) error, err error)
}

// ErrNoWorld is returned by resources that need the World (Runtime.World)
// in an engine that was given none.
var ErrNoWorld = errors.New("this agent has no World: the resource needs graft's cluster-wide state")
