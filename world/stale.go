package world

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/graftcm/graft/fsm"
)

// ReleaseStale gives back the semaphore slots and queue places this host
// holds in the cluster that no caller of this World owns: those an earlier
// process of this host left, and those this World failed to give back when
// its caller was done (the cluster was out of reach; Orphaned then
// receives). A process that crashed and was restarted before the cluster
// declared its host dead is never declared dead, so nothing else would
// release what it held: its holders would keep their slots from every host
// for as long as this host stays in the cluster. An agent has one World per
// cluster (only it may call ReleaseStale). The state is read
// linearizably first. It returns how many it released.
func (w *World) ReleaseStale(ctx context.Context) (int, error) {
	if err := w.b.Linearize(ctx); err != nil {
		return 0, fmt.Errorf("world: releasing stale semaphore slots: %w", err)
	}
	kvs, _ := w.f.List(fsm.SemaPrefix, 0)
	n := 0
	var errs []error
	for _, kv := range kvs {
		st, ok := decodeSema(kv)
		if !ok {
			continue
		}
		id := strings.TrimPrefix(kv.Key, fsm.SemaPrefix)
		for _, s := range slices.Concat(st.Holders, st.Waiters) {
			if s.Node != w.host || w.holders.isLive(s.Holder) {
				continue
			}
			cmd := fsm.Command{Op: fsm.OpSemaRelease, Sema: id, Node: w.host, Holder: s.Holder}
			if _, err := w.apply(ctx, cmd); err != nil {
				errs = append(errs, fmt.Errorf("world: releasing %q of semaphore %q: %w", s.Holder, id, err))
				continue
			}
			n++
			w.log.Info("released a semaphore slot or queue place of this host that nothing here owns",
				"sema", id, "holder", s.Holder, "token", s.Token)
		}
	}
	return n, errors.Join(errs...)
}
