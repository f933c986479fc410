package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClusterView is the agent's cluster as one scrape sees it.
type ClusterView struct {
	// RaftState is raft's state: Follower, Candidate, Leader or Shutdown.
	RaftState    string
	Term         uint64
	LastIndex    uint64 // the last entry in this node's log
	CommitIndex  uint64 // the last entry known committed
	AppliedIndex uint64 // the last entry applied to this node's World
	Revision     uint64 // the World's revision
	// Members counts the members of the gossip ring this node knows by
	// their state: alive, suspect, dead or left.
	Members map[string]int
	// Watches counts the World watches running on this node (the engine's
	// resources, graph sources, API clients); WatchLagRevisions and
	// WatchLag are how far the one furthest behind is from delivering the
	// node's changes (see world.WatchStats).
	Watches           int
	WatchLagRevisions uint64
	WatchLag          time.Duration
}

// raftStates are the values of graft_raft_state's state label; every one is
// exported, 1 for the current state and 0 for the others.
func raftStates() []string { return []string{"follower", "candidate", "leader", "shutdown"} }

// gossipStates are the states graft_gossip_members always has, 0 or not.
func gossipStates() []string { return []string{"alive", "suspect", "dead", "left"} }

// clusterCollector reads the cluster series from its view at each scrape.
type clusterCollector struct {
	raftState, term, last, commit, applied, lag, revision, members *prometheus.Desc
	watches, watchLagRevs, watchLag                                *prometheus.Desc

	mu   sync.Mutex
	view func() (ClusterView, bool) // nil: no series
}

func newClusterCollector() *clusterCollector {
	return &clusterCollector{
		raftState: prometheus.NewDesc(namespace+"_raft_state",
			"1 for this node's raft state (follower, candidate, leader, shutdown), 0 for the others.", []string{"state"}, nil),
		term:    prometheus.NewDesc(namespace+"_raft_term", "The raft term this node is in.", nil, nil),
		last:    prometheus.NewDesc(namespace+"_raft_last_index", "The index of the last entry in this node's raft log.", nil, nil),
		commit:  prometheus.NewDesc(namespace+"_raft_commit_index", "The index of the last raft entry this node knows committed.", nil, nil),
		applied: prometheus.NewDesc(namespace+"_raft_applied_index", "The index of the last raft entry applied to this node's World.", nil, nil),
		lag: prometheus.NewDesc(namespace+"_raft_apply_lag",
			"Raft entries committed but not yet applied to this node's World (commit index minus applied index).", nil, nil),
		revision: prometheus.NewDesc(namespace+"_world_revision", "The revision of this node's copy of the World.", nil, nil),
		members: prometheus.NewDesc(namespace+"_gossip_members",
			"Members of the gossip ring this node knows, by state (alive, suspect, dead, left).", []string{"state"}, nil),
		watches: prometheus.NewDesc(namespace+"_world_watches", "World watches running on this node.", nil, nil),
		watchLagRevs: prometheus.NewDesc(namespace+"_world_watch_lag_revisions",
			"Revisions applied on this node that the watch furthest behind has yet to deliver to its reader.", nil, nil),
		watchLag: prometheus.NewDesc(namespace+"_world_watch_lag_seconds",
			"How long the watch furthest behind has had changes applied on this node that it has not delivered; 0 when every watch is caught up.",
			nil, nil),
	}
}

func (c *clusterCollector) set(view func() (ClusterView, bool)) {
	c.mu.Lock()
	c.view = view
	c.mu.Unlock()
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.raftState, c.term, c.last, c.commit, c.applied, c.lag, c.revision, c.members,
		c.watches, c.watchLagRevs, c.watchLag} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	view := c.view
	c.mu.Unlock()
	if view == nil {
		return
	}
	v, ok := view()
	if !ok {
		return
	}
	state := strings.ToLower(v.RaftState)
	for _, s := range raftStates() {
		ch <- prometheus.MustNewConstMetric(c.raftState, prometheus.GaugeValue, b2f(s == state), s)
	}
	gauge := func(d *prometheus.Desc, n uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
	}
	gauge(c.term, v.Term)
	gauge(c.last, v.LastIndex)
	gauge(c.commit, v.CommitIndex)
	gauge(c.applied, v.AppliedIndex)
	lag := uint64(0)
	if v.CommitIndex > v.AppliedIndex {
		lag = v.CommitIndex - v.AppliedIndex
	}
	gauge(c.lag, lag)
	gauge(c.revision, v.Revision)
	gauge(c.watches, uint64(v.Watches))
	gauge(c.watchLagRevs, v.WatchLagRevisions)
	ch <- prometheus.MustNewConstMetric(c.watchLag, prometheus.GaugeValue, v.WatchLag.Seconds())
	for _, s := range gossipStates() {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(v.Members[s]), s)
	}
	for s, n := range v.Members {
		if !slices.Contains(gossipStates(), s) {
			ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), s)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
