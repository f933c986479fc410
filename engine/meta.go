package engine

import (
	"errors"
	"math"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// Meta holds the engine-level parameters of a vertex (mgmt's metaparams).
// The zero value is the default for every field.
type Meta struct {
	// Noop runs the vertex's CheckApply with apply false. Nothing changes,
	// so nothing is refreshed or sent.
	Noop bool

	// Retry is how many times a failed CheckApply is retried; -1 retries
	// for ever. The count of retries used belongs to the vertex's kind and
	// name and survives graph swaps. A failed Watch has a counter of its own
	// with the same budget, kept for as long as the vertex runs.
	Retry int
	// RetryReset gives back the whole retry budget after every successful
	// CheckApply; without it the budget is spent over the vertex's life.
	RetryReset bool
	// Delay is the wait before each retry.
	Delay time.Duration

	// Timeout bounds each CheckApply; zero means no bound.
	Timeout time.Duration

	// Poll, when positive, replaces Watch: the vertex is checked every
	// Poll instead.
	Poll time.Duration

	// Limit and Burst rate-limit Watch events: at most Burst at once, then
	// Limit per second. Events over the limit are held back and coalesced,
	// never lost. Zero (or rate.Inf) means no limit; a limit with a zero
	// burst is invalid.
	Limit rate.Limit
	Burst int

	// Sema lists counting semaphores the vertex holds while its CheckApply
	// runs: "id" (one holder at a time) or "id:count". A tag starting with
	// "@@" names a semaphore the whole cluster shares (at most count
	// holders cluster-wide, see Config.ClusterSemaphores); the others
	// belong to this host. The host's own are taken first, then the
	// cluster's, each in sorted order, so no graph can deadlock on them.
	Sema []string

	// Rewatch restarts a dead vertex (its Init or Watch failed) when a new
	// graph is swapped in, even if its parameters did not change. Without
	// it a dead vertex is only restarted when its parameters change.
	Rewatch bool

	// NoAutoEdge stops AutoEdges from adding edges into this vertex.
	NoAutoEdge bool
	// NoAutoGroup stops AutoGroup from merging this vertex with others.
	NoAutoGroup bool
}

// Validate checks the metaparameters.
func (m Meta) Validate() error {
	var errs []error
	if m.Retry < -1 {
		errs = append(errs, ParamErrorf("retry", "%d is not a count (or -1 for ever)", m.Retry))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", m.Delay}, {"timeout", m.Timeout}, {"poll", m.Poll}} {
		if d.v < 0 {
			errs = append(errs, ParamErrorf(d.name, "%v is negative", d.v))
		}
	}
	if m.limited() {
		if m.Limit < 0 || math.IsNaN(float64(m.Limit)) {
			errs = append(errs, ParamErrorf("limit", "%v events per second is not a rate", float64(m.Limit)))
		}
		if m.Burst <= 0 {
			errs = append(errs, ParamErrorf("burst", "must be at least 1 when limit is set (got %d)", m.Burst))
		}
	}
	for _, tag := range m.Sema {
		if _, _, err := ParseSema(tag); err != nil {
			errs = append(errs, ParamErrorf("sema", "%w", err))
		}
	}
	return errors.Join(errs...)
}

// limited reports whether events are rate limited.
func (m Meta) limited() bool { return m.Limit != 0 && m.Limit != rate.Inf }

// Equal reports whether two Metas are the same.
func (m Meta) Equal(o Meta) bool {
	return m.Noop == o.Noop && m.Retry == o.Retry && m.RetryReset == o.RetryReset &&
		m.Delay == o.Delay && m.Timeout == o.Timeout && m.Poll == o.Poll &&
		m.Limit == o.Limit && m.Burst == o.Burst && slices.Equal(m.Sema, o.Sema) &&
		m.Rewatch == o.Rewatch && m.NoAutoEdge == o.NoAutoEdge && m.NoAutoGroup == o.NoAutoGroup
}
