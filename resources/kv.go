package resources

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/graftcm/graft/engine"
)

// The comparisons skiplessthan makes, by skipcmpstyle (mgmt's numbers).
const (
	kvCmpInt    = 0 // the values are integers
	kvCmpString = 1 // the values are compared as strings, byte by byte
)

// kvReservedPrefix starts the keys graft keeps for itself in the World
// (fsm.InternalPrefix): a kv resource may not write them.
const kvReservedPrefix = "_graft/"

// KV keeps a key of the World, the state the cluster's hosts share, at a
// value: `graft kv get KEY` reads it on any host.
type KV struct {
	// Key is the key; it defaults to the resource name.
	Key string `yaml:"key"`
	// Value is the value to keep. Absent (or null) deletes the key; an
	// empty string is a value like any other. It can be received over a
	// send/recv edge.
	Value *string `yaml:"value"`
	// Mapped keeps this host's own entry of the key instead of the one
	// value every host shares: each host writes its entry, and reads see
	// every host's. An entry goes with its host when the cluster declares
	// the host dead.
	Mapped bool `yaml:"mapped"`
	// SkipLessThan leaves alone a stored value greater than Value, so that
	// hosts or stages that only ever raise the value never lower it. A
	// refresh overrides it: the key is set to Value exactly.
	SkipLessThan bool `yaml:"skiplessthan"`
	// SkipCmpStyle is how SkipLessThan compares: 0 as integers (Value
	// must be one; a stored value that is not is overwritten), 1 as
	// strings.
	SkipCmpStyle int `yaml:"skipcmpstyle"`

	name string
	rt   *engine.Runtime
}

func (k *KV) key() string {
	if k.Key != "" {
		return k.Key
	}
	return k.name
}

// Validate checks the parameters.
func (k *KV) Validate() error {
	key := k.key()
	switch {
	case key == "":
		return engine.ParamErrorf("key", "empty")
	case strings.HasPrefix(key, kvReservedPrefix):
		return engine.ParamErrorf("key", "%q: keys under %q are graft's own", key, kvReservedPrefix)
	}
	switch k.SkipCmpStyle {
	case kvCmpInt:
		if k.SkipLessThan && k.Value != nil {
			if _, err := strconv.ParseInt(*k.Value, 10, 64); err != nil {
				return engine.ParamErrorf("value", "%q is not an integer, which skiplessthan with skipcmpstyle 0 compares; "+
					"use skipcmpstyle 1 to compare strings", *k.Value)
			}
		}
	case kvCmpString:
	default:
		return engine.ParamErrorf("skipcmpstyle", "%d is not 0 (integers) or 1 (strings)", k.SkipCmpStyle)
	}
	return nil
}

// IgnoredParams names the comparison parameters that have no effect as
// given, each with the reason.
func (k *KV) IgnoredParams() map[string]string {
	ignored := map[string]string{}
	if k.SkipLessThan && k.Value == nil {
		ignored["skiplessthan"] = "value is absent: the key is deleted, whatever it holds"
	}
	if k.SkipCmpStyle != kvCmpInt && !k.SkipLessThan {
		ignored["skipcmpstyle"] = "skiplessthan is not set: nothing is compared"
	}
	if len(ignored) == 0 {
		return nil
	}
	return ignored
}

// Claims claims the key, so that a graph in which two kv resources keep
// one key at values of their own is refused: they would undo each other's
// writes for ever. Resources with skiplessthan and a value claim nothing:
// several stages of one key that only raise it are mgmt's idiom, and they
// settle on the greatest value.
func (k *KV) Claims() []engine.Claim {
	if k.SkipLessThan && k.Value != nil {
		return nil
	}
	space := "kv"
	if k.Mapped {
		space = "mapped kv" // each host's own entry: another key space
	}
	return []engine.Claim{{Space: space, Name: k.key()}}
}

// Init keeps the runtime; it fails without a World.
func (k *KV) Init(rt *engine.Runtime) error {
	if rt.World == nil {
		return fmt.Errorf("kv %q: %w", k.key(), engine.ErrNoWorld)
	}
	k.rt = rt
	return nil
}

// Cleanup does nothing: the key keeps its value.
func (k *KV) Cleanup() error { return nil }

// Watch reports every change of the key (for a mapped key, of any host's
// entry).
func (k *KV) Watch(ctx context.Context) error {
	key, w := k.key(), k.rt.World
	watch := w.KVWatch
	if k.Mapped {
		watch = w.KVHostWatch
	}
	ch, err := watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %q: %w", key, err)
	}
	k.rt.Running()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch %q: ended", key)
			}
			k.rt.Event()
		case <-ctx.Done():
			return nil
		}
	}
}

// kvSwapper is the World's atomic compare-and-set of a global key
// (*world.World and its Handle offer it). With skiplessthan a kv raises
// the key through it, so that it never lowers a value another host wrote
// after it read the key; a World without it gets a plain write.
type kvSwapper interface {
	KVSwap(ctx context.Context, key string, old []byte, exists bool, value []byte) (bool, error)
}

// kvSwapTries bounds how often a skiplessthan kv reads the key again
// because another host changed it between the read and the write.
const kvSwapTries = 10

// CheckApply brings the key to Value. Values are never logged: they may
// be secrets received from another resource.
func (k *KV) CheckApply(ctx context.Context, apply bool) (bool, error) {
	for range kvSwapTries {
		ok, done, err := k.checkApply(ctx, apply)
		if done || err != nil {
			return ok, err
		}
	}
	return false, fmt.Errorf("set %q: other hosts changed it %d times while this one compared it; "+
		"it is checked again at the next change", k.key(), kvSwapTries)
}

// checkApply is one try of CheckApply; done is false if the key changed
// between its read and its write, which was not made.
func (k *KV) checkApply(ctx context.Context, apply bool) (checkOK, done bool, err error) {
	key := k.key()
	cur, exists, err := k.get(ctx)
	if err != nil {
		return false, true, fmt.Errorf("read %q: %w", key, err)
	}
	if k.Value == nil {
		if !exists {
			return true, true, nil
		}
		if !apply {
			k.rt.Logger.Info("would delete", "key", key, "mapped", k.Mapped)
			return false, true, nil
		}
		if err := k.del(ctx); err != nil {
			return false, true, fmt.Errorf("delete %q: %w", key, err)
		}
		k.rt.Logger.Info("deleted", "key", key, "mapped", k.Mapped)
		return false, true, nil
	}
	want := *k.Value
	if exists && (cur == want || k.keep(cur)) {
		return true, true, nil
	}
	if !apply {
		k.rt.Logger.Info("would set", "key", key, "mapped", k.Mapped, "bytes", len(want))
		return false, true, nil
	}
	if sw, ok := k.rt.World.(kvSwapper); ok && k.SkipLessThan && !k.Mapped {
		swapped, err := sw.KVSwap(ctx, key, []byte(cur), exists, []byte(want))
		if err != nil {
			return false, true, fmt.Errorf("set %q: %w", key, err)
		}
		if !swapped {
			return false, false, nil // changed since the read: read it again
		}
	} else if err := k.put(ctx, want); err != nil {
		return false, true, fmt.Errorf("set %q: %w", key, err)
	}
	k.rt.Logger.Info("set", "key", key, "mapped", k.Mapped, "bytes", len(want))
	return false, true, nil
}

// keep reports whether skiplessthan leaves the stored value cur, which
// differs from Value, alone: it is greater, and no refresh asks for Value
// exactly.
func (k *KV) keep(cur string) bool {
	if !k.SkipLessThan || k.rt.Refresh() {
		return false
	}
	want := *k.Value
	if k.SkipCmpStyle == kvCmpString {
		return want < cur
	}
	c, err := strconv.ParseInt(cur, 10, 64)
	if err != nil {
		return false // not a number (an old or foreign value): ours replaces it
	}
	w, _ := strconv.ParseInt(want, 10, 64) // Validate checked it
	return w < c
}

// get reads the key (for a mapped key, this host's entry).
func (k *KV) get(ctx context.Context) (string, bool, error) {
	if k.Mapped {
		vals, err := k.rt.World.KVHostGet(ctx, k.key())
		if err != nil {
			return "", false, err
		}
		v, ok := vals[k.rt.Hostname]
		return string(v), ok, nil
	}
	v, ok, err := k.rt.World.KVGet(ctx, k.key())
	return string(v), ok, err
}

func (k *KV) put(ctx context.Context, v string) error {
	if k.Mapped {
		return k.rt.World.KVHostPut(ctx, k.key(), []byte(v))
	}
	return k.rt.World.KVPut(ctx, k.key(), []byte(v))
}

func (k *KV) del(ctx context.Context) error {
	if k.Mapped {
		return k.rt.World.KVHostDelete(ctx, k.key())
	}
	return k.rt.World.KVDelete(ctx, k.key())
}
