package metrics

import (
	"fmt"
	"testing"
	"time"
)

// The semaphore series count holders and waiters by id, read at each
// scrape; an id no longer used stays at 0; ids beyond MaxSemaphoreIDs share
// one series, so a graph naming thousands of semaphores cannot make
// thousands of series.
func TestSemaphoreSeriesByIDWithBoundedLabels(t *testing.T) {
	c := New()
	url := serve(t, c)
	use := map[string]SemaphoreUse{"lock": {Holders: 1, Waiters: 2}, "@@deploy": {Holders: 1}}
	c.SetSemaphoreSource(func() map[string]SemaphoreUse { return use })
	fams := scrape(t, url)
	want(t, fams, 1, "graft_semaphore_holders", "sema", "lock")
	want(t, fams, 2, "graft_semaphore_waiters", "sema", "lock")
	want(t, fams, 1, "graft_semaphore_holders", "sema", "@@deploy")
	want(t, fams, 0, "graft_semaphore_waiters", "sema", "@@deploy")

	use = map[string]SemaphoreUse{}
	for i := range 3 * MaxSemaphoreIDs {
		use[fmt.Sprintf("s%03d", i)] = SemaphoreUse{Holders: 1}
	}
	fams = scrape(t, url)
	want(t, fams, 0, "graft_semaphore_holders", "sema", "lock")
	if n := len(fams["graft_semaphore_holders"].GetMetric()); n != MaxSemaphoreIDs+1 {
		t.Errorf("%d holder series for %d semaphores, want %d (the first %d ids and %s)",
			n, len(use)+2, MaxSemaphoreIDs+1, MaxSemaphoreIDs, OtherSemaphores)
	}
	total := 0.0
	for _, m := range fams["graft_semaphore_holders"].GetMetric() {
		total += m.GetGauge().GetValue()
	}
	if total != float64(len(use)) {
		t.Errorf("holders sum to %v over the series, want %d: none lost to the bound", total, len(use))
	}
}

// The World's watch lag is served with the cluster series.
func TestWatchLagIsServedWithTheClusterSeries(t *testing.T) {
	c := New()
	url := serve(t, c)
	c.SetCluster(func() (ClusterView, bool) {
		return ClusterView{RaftState: "Leader", Watches: 3, WatchLagRevisions: 7, WatchLag: 1500 * time.Millisecond}, true
	})
	fams := scrape(t, url)
	want(t, fams, 3, "graft_world_watches")
	want(t, fams, 7, "graft_world_watch_lag_revisions")
	want(t, fams, 1.5, "graft_world_watch_lag_seconds")
}
