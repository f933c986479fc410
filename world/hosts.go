package world

import (
	"context"
	"fmt"
	"strings"

	"github.com/graftcm/graft/fsm"
)

// hostKey is where host keeps its value in namespace ns.
func hostKey(ns, host string) string { return fsm.HostPrefix + ns + "/" + host }

func checkNamespace(ns string) error {
	if ns == "" || strings.ContainsAny(ns, "/") || len(ns) > fsm.MaxNameSize {
		return fmt.Errorf("world: namespace %q: want 1 to %d characters, no slashes", ns, fsm.MaxNameSize)
	}
	return nil
}

// SetHostValue sets this host's value in namespace ns (mgmt's StrMap). The
// value is ephemeral: it goes when the host is declared dead.
func (w *World) SetHostValue(ctx context.Context, ns string, value []byte) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	_, err := w.apply(ctx, fsm.Command{Op: fsm.OpPut, Key: hostKey(ns, w.host), Value: value,
		Ephemeral: true, Node: w.host})
	return err
}

// DeleteHostValue removes this host's value in namespace ns.
func (w *World) DeleteHostValue(ctx context.Context, ns string) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	_, err := w.apply(ctx, fsm.Command{Op: fsm.OpDelete, Key: hostKey(ns, w.host)})
	return err
}

// HostValues returns every host's value in namespace ns, by host name, and
// the revision they are current at.
func (w *World) HostValues(ctx context.Context, ns string, opts ...ReadOption) (map[string][]byte, uint64, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, 0, err
	}
	kvs, rev, err := w.List(ctx, fsm.HostPrefix+ns+"/", opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make(map[string][]byte, len(kvs))
	for _, kv := range kvs {
		out[strings.TrimPrefix(kv.Key, fsm.HostPrefix+ns+"/")] = kv.Value
	}
	return out, rev, nil
}

// WatchHostValues follows namespace ns; see Watch.
func (w *World) WatchHostValues(ctx context.Context, ns string, from uint64) (<-chan WatchEvent, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	return w.Watch(ctx, fsm.HostPrefix+ns+"/", from), nil
}
