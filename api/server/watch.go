package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/graftcm/graft/api"
)

// watch streams the changes under a prefix; see the package documentation.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	// net/http notices a client gone only once its body is read: a watch
	// with an unread body would outlive its client.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		writeError(w, http.StatusBadRequest, "a watch request has no body")
		return
	}
	q := r.URL.Query()
	prefix := q.Get("prefix")
	var from uint64
	if v := q.Get("rev"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			fail(w, badf("rev=%q: want a revision number", v))
			return
		}
		from = n
	}
	c := s.contact()
	setContact(w, c)
	from, err := s.watchStart(r.Context(), from)
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // ends the World's watch
	evs := s.cfg.Store.Watch(ctx, prefix, from)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(o api.StreamObject) bool {
		return enc.Encode(o) == nil && rc.Flush() == nil
	}
	if !send(api.StreamObject{WatchEvent: api.WatchEvent{Start: true, Rev: from}, Contact: c}) {
		return
	}
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				if ctx.Err() == nil {
					send(api.StreamObject{Error: "the agent ended the watch"})
				}
				return
			}
			if !send(api.StreamObject{WatchEvent: fromWorld(ev)}) {
				return
			}
		case <-s.stopping:
			send(api.StreamObject{Error: "the agent is stopping"})
			return
		case <-ctx.Done():
			return // the client went away
		}
	}
}

// watchStart returns the revision a watch asked to start after (0: now)
// starts after, or why it cannot start there. The request timeout bounds
// what it waits for.
func (s *Server) watchStart(ctx context.Context, from uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if from == 0 {
		// "From now" means now in the cluster, not in a local copy that
		// may not have caught up since the agent started.
		if err := s.catchUp(ctx); err != nil {
			return 0, err
		}
		return s.cfg.Store.Rev(), nil
	}
	if from <= s.cfg.Store.Rev() {
		return from, nil
	}
	// Ahead of the local copy: another node may just have returned it. A
	// revision still ahead once the local copy has caught up with the
	// cluster does not exist yet; watching from it would start with a
	// resync back to the current one.
	if err := s.barrier(ctx); err != nil {
		return 0, fmt.Errorf("revision %d is ahead of this node's %d, which could not catch up: %w", from, s.cfg.Store.Rev(), err)
	}
	if rev := s.cfg.Store.Rev(); from > rev {
		return 0, badf("required revision %d is a future revision: the current revision is %d", from, rev)
	}
	return from, nil
}
