package world

import (
	"context"
	"fmt"
	"net/url"

	"github.com/graftcm/graft/fsm"
)

// This file is the World as the engine sees it (engine.World): the keys
// the kv resource reads, writes and follows. A global key is the user key
// of the same name, so `graft kv get` reads what a kv resource wrote. A
// per-host key (mgmt's mapped kv) is the host values of a namespace made
// from the key: kvHostPrefix followed by the key path-escaped, so that a
// key holding "/" (which a namespace may not) maps to one namespace of its
// own, and no key maps to a namespace graft uses for anything else.

// kvHostPrefix starts every namespace that holds a per-host key.
const kvHostPrefix = "kv:"

// KVHostNamespace returns the host-value namespace that holds the per-host
// key key: "kv:" and the key path-escaped ("a/b" is "kv:a%2Fb").
func KVHostNamespace(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("world: empty per-host key")
	}
	ns := kvHostPrefix + url.PathEscape(key)
	if len(ns) > fsm.MaxNameSize {
		return "", fmt.Errorf("world: per-host key %q is %d bytes escaped, at most %d", key,
			len(ns)-len(kvHostPrefix), fsm.MaxNameSize-len(kvHostPrefix))
	}
	return ns, nil
}

// KVGet returns key's value and whether the key exists, from this host's
// copy of the state.
func (w *World) KVGet(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkUserKey(key); err != nil {
		return nil, false, err
	}
	kv, ok, err := w.Get(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	return kv.Value, true, nil
}

// KVPut sets key to value.
func (w *World) KVPut(ctx context.Context, key string, value []byte) error {
	_, err := w.Put(ctx, key, value)
	return err
}

// KVDelete deletes key; a missing key is not an error.
func (w *World) KVDelete(ctx context.Context, key string) error {
	_, err := w.Delete(ctx, key)
	return err
}

// KVWatch returns a channel that receives after every change of key
// (changes coalesce while the receiver is busy) until ctx ends, when it is
// closed. The watch is in place when KVWatch returns.
func (w *World) KVWatch(ctx context.Context, key string) (<-chan struct{}, error) {
	if err := checkUserKey(key); err != nil {
		return nil, err
	}
	// Watch follows a prefix: the events of longer keys are dropped.
	return notify(ctx, w.Watch(ctx, key, 0), func(k string) bool { return k == key }), nil
}

// KVSwap sets key to value if it still holds old (exists: if it exists
// with that value; !exists: if it does not exist), atomically, and reports
// whether it did. After it returns, this host's copy of the state is at
// least as new as the cluster's when the comparison was made, so a read
// then sees what made it fail. The kv resource's skiplessthan uses it so
// as never to lower a value another host raised since it read it.
func (w *World) KVSwap(ctx context.Context, key string, old []byte, exists bool, value []byte) (bool, error) {
	if err := checkUserKey(key); err != nil {
		return false, err
	}
	cmp := fsm.Compare{Target: fsm.CompareAbsent, Key: key}
	if exists {
		cmp = fsm.Compare{Target: fsm.CompareValue, Key: key, Value: old}
	}
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpTxn, Compares: []fsm.Compare{cmp},
		Then: []fsm.Command{{Op: fsm.OpPut, Key: key, Value: value}}})
	return res.OK, err
}

// KVHostGet returns every host's entry of the per-host key, by host name.
func (w *World) KVHostGet(ctx context.Context, key string) (map[string][]byte, error) {
	ns, err := KVHostNamespace(key)
	if err != nil {
		return nil, err
	}
	vals, _, err := w.HostValues(ctx, ns)
	return vals, err
}

// KVHostPut sets this host's entry of the per-host key. Like every host
// value, it is removed when the cluster declares this host dead.
func (w *World) KVHostPut(ctx context.Context, key string, value []byte) error {
	ns, err := KVHostNamespace(key)
	if err != nil {
		return err
	}
	return w.SetHostValue(ctx, ns, value)
}

// KVHostDelete deletes this host's entry of the per-host key.
func (w *World) KVHostDelete(ctx context.Context, key string) error {
	ns, err := KVHostNamespace(key)
	if err != nil {
		return err
	}
	return w.DeleteHostValue(ctx, ns)
}

// KVHostWatch is KVWatch for every host's entry of the per-host key.
func (w *World) KVHostWatch(ctx context.Context, key string) (<-chan struct{}, error) {
	ns, err := KVHostNamespace(key)
	if err != nil {
		return nil, err
	}
	evs, err := w.WatchHostValues(ctx, ns, 0)
	if err != nil {
		return nil, err
	}
	return notify(ctx, evs, func(string) bool { return true }), nil
}

// notify turns a watch into coalescing notifications: one for every
// delivery that holds an event of a key match accepts, or a resync (which
// may hide one). The channel is closed when the watch ends.
func notify(ctx context.Context, evs <-chan WatchEvent, match func(key string) bool) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					return
				}
				if !relevant(ev, match) {
					continue
				}
				select {
				case out <- struct{}{}:
				default: // one is pending: the receiver reads the state after it
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func relevant(ev WatchEvent, match func(string) bool) bool {
	if ev.Resync {
		return true
	}
	for _, e := range ev.Events {
		if match(e.KV.Key) {
			return true
		}
	}
	return false
}
