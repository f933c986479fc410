package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// namespace prefixes every series graft defines.
const namespace = "graft"

// CheckApplyObserver is what the engine needs to report its work: it is
// called after each CheckApply with the resource's kind, how long it took,
// whether it changed anything and its error (nil on success). It must not
// block: it runs on the engine's workers.
type CheckApplyObserver interface {
	ObserveCheckApply(kind string, d time.Duration, changed bool, err error)
}

// Collector is one agent's metrics: a registry of its own (nothing goes to
// the process-wide default registry) holding the Go and process collectors,
// the cluster series read at each scrape, and the engine series the agent
// reports as they happen. Its methods are safe for concurrent use.
type Collector struct {
	reg *prometheus.Registry

	checkApplies  *prometheus.CounterVec
	checkApplyDur *prometheus.HistogramVec
	resources     *prometheus.GaugeVec
	converged     prometheus.Gauge
	swaps         prometheus.Counter
	swapDur       prometheus.Histogram

	mu        sync.Mutex
	states    map[string]bool       // the resource states SetResourceStates last set
	stateFunc func() map[string]int // read at each scrape, if set
	cluster   *clusterCollector
	semas     *semaCollector
}

var _ CheckApplyObserver = (*Collector)(nil)

// New returns a collector with every series registered; the cluster series
// appear once SetCluster gives their source.
func New() *Collector {
	c := &Collector{
		reg: prometheus.NewRegistry(),
		checkApplies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "checkapply_total",
			Help: "CheckApply calls by resource kind and result: unchanged, changed or error."}, []string{"kind", "result"}),
		checkApplyDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "checkapply_duration_seconds",
			Help: "How long CheckApply took, by resource kind.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"kind"}),
		resources: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "resources",
			Help: "Resources of the running graph by state."}, []string{"state"}),
		converged: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "converged",
			Help: "1 while this host's graph is converged, else 0."}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "graph_swaps_total",
			Help: "Graphs swapped into the engine."}),
		swapDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "graph_swap_duration_seconds",
			Help: "How long a graph swap paused the engine.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		states:  map[string]bool{},
		cluster: newClusterCollector(),
		semas:   newSemaCollector(),
	}
	c.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		c.checkApplies, c.checkApplyDur, c.resources, c.converged, c.swaps, c.swapDur, c.cluster, c.semas)
	return c
}

// Registry is the collector's registry, for serving or gathering.
func (c *Collector) Registry() *prometheus.Registry { return c.reg }

// ObserveCheckApply counts one CheckApply of a resource of kind and records
// its duration.
func (c *Collector) ObserveCheckApply(kind string, d time.Duration, changed bool, err error) {
	result := "unchanged"
	switch {
	case err != nil:
		result = "error"
	case changed:
		result = "changed"
	}
	c.checkApplies.WithLabelValues(kind, result).Inc()
	c.checkApplyDur.WithLabelValues(kind).Observe(d.Seconds())
}

// SetResourceStates sets how many resources of the running graph are in
// each state (such as ok, dirty, running, failed). A state missing from
// counts, that an earlier call had, drops to 0.
func (c *Collector) SetResourceStates(counts map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.states {
		if _, ok := counts[s]; !ok {
			c.resources.WithLabelValues(s).Set(0)
		}
	}
	for s, n := range counts {
		c.states[s] = true
		c.resources.WithLabelValues(s).Set(float64(n))
	}
}

// SetResourceSource makes f the source of the resources-by-state series,
// read at each scrape (as SetResourceStates would be called then); nil
// stops reading it.
func (c *Collector) SetResourceSource(f func() map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stateFunc = f
}

// refreshStates reads the resource source, if any, before a scrape.
func (c *Collector) refreshStates() {
	c.mu.Lock()
	f := c.stateFunc
	c.mu.Unlock()
	if f != nil {
		c.SetResourceStates(f())
	}
}

// SetConverged sets whether this host's graph is converged.
func (c *Collector) SetConverged(converged bool) {
	v := 0.0
	if converged {
		v = 1
	}
	c.converged.Set(v)
}

// ObserveGraphSwap counts a graph swapped into the engine and how long the
// swap took.
func (c *Collector) ObserveGraphSwap(d time.Duration) {
	c.swaps.Inc()
	c.swapDur.Observe(d.Seconds())
}

// SetCluster makes view the source of the raft, gossip and World series,
// read at each scrape; nil removes it (the series are then absent). view
// returns false while the agent runs no cluster server.
func (c *Collector) SetCluster(view func() (ClusterView, bool)) {
	c.cluster.set(view)
}

// SetSemaphoreSource makes f the source of the semaphore series, read at
// each scrape: the use of each semaphore by id. nil removes the series.
func (c *Collector) SetSemaphoreSource(f func() map[string]SemaphoreUse) {
	c.semas.set(f)
}
