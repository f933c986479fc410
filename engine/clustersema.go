package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Cluster semaphores are the sema tags starting with "@@": their slots are
// held in the cluster (Config.ClusterSemaphores), so that at most count
// vertices across every host hold one at a time. A vertex takes them after
// its local semaphores, in sorted order, and gives them back once its
// CheckApply has ended and its result is reported.

// ErrNoClusterSemaphores refuses a graph with a cluster semaphore in an
// engine that has no cluster to hold it.
var ErrNoClusterSemaphores = errors.New("cluster-wide semaphores (tags starting with @@) need a cluster, and this agent runs without one")

// ErrClusterSemaphoreLost is the cause of a CheckApply cancelled because a
// cluster semaphore slot it ran under was lost: this host lost contact with
// the cluster's quorum, or the cluster declared it dead and gave the slot
// to another. The run counts as failed.
var ErrClusterSemaphoreLost = errors.New("cluster semaphore lost")

// slotLostError is ErrClusterSemaphoreLost for one semaphore.
type slotLostError struct{ id string }

func (e *slotLostError) Error() string {
	return "cluster semaphore " + clusterSemaPrefix + e.id +
		" lost: this host lost contact with the cluster's quorum, or the cluster declared it dead"
}

func (e *slotLostError) Is(target error) bool { return target == ErrClusterSemaphoreLost }

// Releasing a slot the cluster could not take back is tried again, with
// a growing delay, until the engine stops; each attempt is bounded, the
// last one (the engine stops or aborts) more tightly.
const (
	slotReleaseTimeout     = 10 * time.Second
	slotReleaseLastTimeout = 2 * time.Second
	slotReleaseRetryMin    = time.Second
	slotReleaseRetryMax    = 30 * time.Second
)

// clusterSema is a cluster semaphore a vertex holds: its id without the @@
// and its count.
type clusterSema struct {
	id    string
	count int64
}

// slot is a held slot of a cluster semaphore.
type slot struct {
	id      string
	token   uint64
	lost    <-chan struct{}
	release func(context.Context) error
}

// checkClusterSemas refuses, in an engine without ClusterSemaphores, a
// graph that uses a cluster semaphore, naming each vertex and tag.
func (s *scheduler) checkClusterSemas(g *Graph) error {
	if s.cfg.ClusterSemaphores != nil {
		return nil
	}
	var errs []error
	for _, v := range g.Vertices() {
		for _, tag := range v.Meta.Sema {
			if strings.HasPrefix(tag, clusterSemaPrefix) {
				errs = append(errs, &VertexError{ID: v.ID, Err: fmt.Errorf("meta: sema %q: %w", tag, ErrNoClusterSemaphores)})
			}
		}
	}
	return errors.Join(errs...)
}

// acquireSlots takes a slot of each semaphore in turn, waiting until ctx
// ends. It returns the slots it took, also with an error.
func (s *scheduler) acquireSlots(ctx context.Context, sems []clusterSema) ([]slot, error) {
	cs := s.cfg.ClusterSemaphores
	if cs == nil {
		return nil, ErrNoClusterSemaphores // checked when the graph loaded
	}
	held := make([]slot, 0, len(sems))
	for _, c := range sems {
		token, lost, release, err := cs.AcquireSlot(ctx, c.id, c.count)
		if err != nil {
			return held, fmt.Errorf("cluster semaphore %s%s: %w", clusterSemaPrefix, c.id, err)
		}
		held = append(held, slot{id: c.id, token: token, lost: lost, release: release})
	}
	return held, nil
}

// watchLost cancels ctx, with the loss as its cause, if one of the slots
// is lost before ctx ends. Its goroutines end with ctx.
func watchLost(ctx context.Context, cancel context.CancelCauseFunc, held []slot) {
	for _, sl := range held {
		go func() {
			select {
			case <-sl.lost:
				cancel(&slotLostError{id: sl.id})
			case <-ctx.Done():
			}
		}()
	}
}

// lostSlot returns the loss of the first of the slots that is lost, nil
// if none is.
func lostSlot(held []slot) error {
	for _, sl := range held {
		select {
		case <-sl.lost:
			return &slotLostError{id: sl.id}
		default:
		}
	}
	return nil
}

// fences maps each slot's semaphore id (without the @@) to its token.
func fences(held []slot) map[string]uint64 {
	m := make(map[string]uint64, len(held))
	for _, sl := range held {
		m[sl.id] = sl.token
	}
	return m
}

// releaseSlots gives the slots back. One the cluster could not take back
// (this host cannot reach its quorum) is tried again until it can, or
// until the engine stops (one last attempt is made then); after that the
// cluster frees it when it declares this host dead or gone. Abort does
// not cancel a release (the slot would stay held until the cluster
// declares this host dead): it makes the attempt the last.
func (s *scheduler) releaseSlots(held []slot) {
	delay := slotReleaseRetryMin
	for len(held) > 0 {
		var failed []slot
		for _, sl := range held {
			timeout := slotReleaseTimeout
			if s.slotRetry.Err() != nil {
				timeout = slotReleaseLastTimeout
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(s.applyCtx), timeout)
			err := sl.release(ctx)
			cancel()
			if err != nil {
				failed = append(failed, sl)
				s.log.Warn("could not release a cluster semaphore slot", "sema", clusterSemaPrefix+sl.id,
					"token", sl.token, "err", err)
			}
		}
		held = failed
		if len(held) == 0 {
			return
		}
		if s.slotRetry.Err() != nil {
			s.log.Error("gave up releasing cluster semaphore slots; the cluster frees them when it declares this host dead or gone",
				"sema", slotNames(held))
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.slotRetry.Done():
			t.Stop()
		}
		delay = min(2*delay, slotReleaseRetryMax)
	}
}

// slotNames lists the slots' semaphores, for logs.
func slotNames(held []slot) string {
	names := make([]string, len(held))
	for i, sl := range held {
		names[i] = clusterSemaPrefix + sl.id
	}
	return strings.Join(names, ", ")
}
