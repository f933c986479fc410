package metrics

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxSemaphoreIDs bounds the sema label of the semaphore series: the
// first MaxSemaphoreIDs semaphore ids seen get series of their own, kept
// (at 0 when unused) for the agent's life; any further id is counted under
// OtherSemaphores. Ids come from graphs, which can name any number.
const MaxSemaphoreIDs = 32

// OtherSemaphores is the sema label value of the semaphores beyond
// MaxSemaphoreIDs.
const OtherSemaphores = "_other"

// SemaphoreUse is how the resources of this host use one semaphore: how
// many hold a slot of it and how many wait for one.
type SemaphoreUse struct{ Holders, Waiters int }

// semaCollector reads the semaphores' use from its source at each scrape.
type semaCollector struct {
	holders, waiters *prometheus.Desc

	mu    sync.Mutex
	src   func() map[string]SemaphoreUse // nil: no series
	named map[string]bool                // ids with a series of their own, at most MaxSemaphoreIDs
}

func newSemaCollector() *semaCollector {
	return &semaCollector{
		holders: prometheus.NewDesc(namespace+"_semaphore_holders",
			"Resources of this host holding a slot of a semaphore, by semaphore id (meta sema; @@ for the cluster's, "+
				"--sema for the host-wide limit; ids beyond the first 32 seen share "+OtherSemaphores+").", []string{"sema"}, nil),
		waiters: prometheus.NewDesc(namespace+"_semaphore_waiters",
			"Resources of this host waiting for a slot of a semaphore, by semaphore id (as graft_semaphore_holders).",
			[]string{"sema"}, nil),
		named: map[string]bool{},
	}
}

func (c *semaCollector) set(src func() map[string]SemaphoreUse) {
	c.mu.Lock()
	c.src = src
	c.mu.Unlock()
}

func (c *semaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.holders
	ch <- c.waiters
}

func (c *semaCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == nil {
		return
	}
	use := c.src()
	ids := make([]string, 0, len(use))
	for id := range use {
		ids = append(ids, id)
	}
	slices.Sort(ids) // which new ids get a series of their own does not depend on map order
	out := map[string]SemaphoreUse{}
	for id := range c.named {
		out[id] = SemaphoreUse{}
	}
	for _, id := range ids {
		label := id
		if !c.named[id] {
			if len(c.named) < MaxSemaphoreIDs && id != OtherSemaphores {
				c.named[id] = true
			} else {
				label = OtherSemaphores
			}
		}
		u := out[label]
		u.Holders += use[id].Holders
		u.Waiters += use[id].Waiters
		out[label] = u
	}
	for label, u := range out {
		ch <- prometheus.MustNewConstMetric(c.holders, prometheus.GaugeValue, float64(u.Holders), label)
		ch <- prometheus.MustNewConstMetric(c.waiters, prometheus.GaugeValue, float64(u.Waiters), label)
	}
}
