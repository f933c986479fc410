package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/semaphore"
)

// Semaphores (Meta.Sema, Config.Sema) bound how many CheckApply calls run
// at once. A vertex's tags are parsed here (ParseSema) and resolved to the
// host's own semaphores (semaphores) when it is dispatched; its CheckApply
// goroutine then takes them in one global order, the host's global one
// first, then the host's by sorted id, then the cluster's by sorted id
// (takeSemaphores), so no graph can deadlock on them. The host's are given
// back when the scheduler handles the result; the cluster's slots (see
// clustersema.go) once the result is reported.

// semEntry is a local counting semaphore.
type semEntry struct {
	count int64
	w     *semaphore.Weighted
}

// globalSema returns the host-wide semaphore of Config.Sema (n holders at
// once), nil if n is not positive.
func globalSema(n int) *semaphore.Weighted {
	if n <= 0 {
		return nil
	}
	return semaphore.NewWeighted(int64(n))
}

// semaWait returns the context that bounds n's wait for its count
// semaphores and the function that ends it. A vertex that waits for any
// gets a context of its own, kept in n.semaCancel, so that a swap dooming
// n can end its wait; Run stopping ends every wait.
func (s *scheduler) semaWait(n *node, count int) (context.Context, context.CancelFunc) {
	if count == 0 {
		return s.semaCtx, func() {}
	}
	ctx, cancel := context.WithCancel(s.semaCtx)
	n.semaCancel = cancel
	return ctx, cancel
}

// semaphores resolves n's semaphore tags, plus the global one, to local
// semaphores in sorted order of their ids, and lists its cluster
// semaphores, sorted too. A noop check (apply false) changes nothing: it
// takes no cluster slot, so a preview on one host never holds up the
// hosts that apply.
func (s *scheduler) semaphores(n *node, apply bool) ([]*semaphore.Weighted, []clusterSema) {
	var out []*semaphore.Weighted
	if s.global != nil {
		out = append(out, s.global) // always first: one global order
	}
	tags := n.meta.Sema
	if len(tags) == 0 {
		return out, nil
	}
	type idCount struct {
		id    string
		count int64
	}
	parsed := make([]idCount, 0, len(tags))
	for _, tag := range tags {
		id, count, err := ParseSema(tag)
		if err != nil {
			continue // graphs are validated before they get here
		}
		parsed = append(parsed, idCount{id, count})
	}
	slices.SortFunc(parsed, func(a, b idCount) int { return strings.Compare(a.id, b.id) })
	parsed = slices.CompactFunc(parsed, func(a, b idCount) bool { return a.id == b.id })
	var cluster []clusterSema
	for _, p := range parsed {
		if name, ok := strings.CutPrefix(p.id, clusterSemaPrefix); ok {
			cluster = append(cluster, clusterSema{id: name, count: p.count})
			continue
		}
		e := s.sems[p.id]
		if e == nil || e.count != p.count {
			// A new count makes a new semaphore; holders of the old one
			// release the old one.
			e = &semEntry{count: p.count, w: semaphore.NewWeighted(p.count)}
			s.sems[p.id] = e
		}
		out = append(out, e.w)
	}
	if !apply {
		cluster = nil
	}
	return out, cluster
}

// takeSemaphores takes, on the CheckApply goroutine, the semaphores of
// l's vertex in their order: the host's, then the cluster's slots, which
// are watched for loss from then on (see watchLost). A wait cut short
// (Run stops, or a swap dooms the vertex) marks r not run; a cluster that
// fails to give a slot fails the run. The host's semaphores taken go in
// r.held; the slots taken are returned, also on failure. The wait ends
// here either way.
func (s *scheduler) takeSemaphores(l launch, r *result) []slot {
	for _, w := range l.sems {
		if err := w.Acquire(l.semaCtx, 1); err != nil {
			r.notRun = true
			break
		}
		r.held = append(r.held, w)
	}
	var slots []slot
	if !r.notRun && len(l.cluster) > 0 {
		var err error
		slots, err = s.acquireSlots(l.semaCtx, l.cluster)
		switch {
		case err != nil && l.semaCtx.Err() != nil:
			r.notRun = true // stopping, or doomed by a swap
		case err != nil:
			r.err = err
		}
		watchLost(l.ctx, l.cancel, slots)
	}
	l.semaCancel()
	return slots
}

// release gives back the host's semaphores a CheckApply held.
func release(held []*semaphore.Weighted) {
	for _, w := range held {
		w.Release(1)
	}
}

// clusterSemaPrefix starts a semaphore tag that names a semaphore the
// whole cluster shares (mgmt's format).
const clusterSemaPrefix = "@@"

// maxClusterSemaID is the longest id (without the @@) the cluster stores
// for a semaphore, in bytes; maxClusterSemaCount the most slots it keeps
// for one (fsm.MaxNameSize and fsm.MaxSemaCount).
const (
	maxClusterSemaID    = 256
	maxClusterSemaCount = 1 << 20
)

// ParseSema splits a semaphore tag into its id and count: "id" holds one,
// "id:count" holds count (the integer after the last colon). The count must
// be positive; an id made only of digits is rejected, since it reads like a
// count that lost its id. A tag starting with "@@" keeps the @@ in its id
// (a cluster semaphore and a local one of the same name are two
// semaphores), and its name after the @@ follows the same rules.
func ParseSema(tag string) (id string, count int64, err error) {
	id, count = tag, 1
	if i := strings.LastIndexByte(tag, ':'); i >= 0 {
		n, perr := strconv.ParseInt(tag[i+1:], 10, 64)
		if perr != nil || n < 1 {
			return "", 0, fmt.Errorf("%q: the count after the last colon must be a positive integer", tag)
		}
		id, count = tag[:i], n
	}
	name, cluster := strings.CutPrefix(id, clusterSemaPrefix)
	switch {
	case name == "":
		return "", 0, fmt.Errorf("%q: the id is empty", tag)
	case cluster && len(name) > maxClusterSemaID:
		return "", 0, fmt.Errorf("%q: the id after @@ is %d bytes, at most %d", tag, len(name), maxClusterSemaID)
	case cluster && count > maxClusterSemaCount:
		return "", 0, fmt.Errorf("%q: a cluster semaphore has at most %d slots", tag, maxClusterSemaCount)
	}
	if _, perr := strconv.ParseInt(name, 10, 64); perr == nil {
		return "", 0, fmt.Errorf("%q: the id is a bare number; write id:count", tag)
	}
	return id, count, nil
}
