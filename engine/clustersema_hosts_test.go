package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/world"
)

// span is one CheckApply of a host's job.
type span struct {
	host       string
	start, end time.Time // end is zero while it runs
	err        error
}

// timeline collects the spans of every host's job.
type timeline struct {
	mu    sync.Mutex
	spans []span
}

func (tl *timeline) begin(host string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.spans = append(tl.spans, span{host: host, start: time.Now()})
	return len(tl.spans) - 1
}

func (tl *timeline) end(i int, err error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.spans[i].end, tl.spans[i].err = time.Now(), err
}

func (tl *timeline) all() []span {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.spans)
}

// ended counts the spans that have ended.
func (tl *timeline) ended() int {
	n := 0
	for _, s := range tl.all() {
		if !s.end.IsZero() {
			n++
		}
	}
	return n
}

// maxOverlap is the largest number of spans running at one instant; a
// span ending when another starts does not overlap it.
func maxOverlap(spans []span) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		end := s.end
		if end.IsZero() {
			end = time.Now()
		}
		edges = append(edges, edge{s.start, 1}, edge{end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends first
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// job is a resource whose CheckApply takes d (unless cancelled), like an
// exec of "sleep"; it records when each one started and ended.
type job struct {
	host string
	d    time.Duration
	tl   *timeline
	rt   *engine.Runtime
}

func (j *job) Validate() error               { return nil }
func (j *job) Init(rt *engine.Runtime) error { j.rt = rt; return nil }
func (j *job) Cleanup() error                { return nil }

func (j *job) Watch(ctx context.Context) error {
	j.rt.Running()
	<-ctx.Done()
	return nil
}

func (j *job) CheckApply(ctx context.Context, _ bool) (bool, error) {
	i := j.tl.begin(j.host)
	var err error
	select {
	case <-time.After(j.d):
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	j.tl.end(i, err)
	return true, err
}

// semaHost is one agent of a multi-host test: a cluster server and the
// World on it.
type semaHost struct {
	slot *clustertest.Slot
	w    *world.World
}

// testLease is the Worlds' lease timeout at the test timings: the default
// scaled as ReleaseGrace is from production timings to these, so that it
// keeps production's ratio to ReleaseGrace (1:1).
func testLease() time.Duration {
	test, prod := cluster.TestServerConfig().ReleaseGrace, cluster.DefaultServerConfig().ReleaseGrace
	return time.Duration(int64(world.DefaultLeaseTimeout) * int64(test) / int64(prod))
}

// semaFleet starts three servers (s0, s1, s2) that form one cluster with
// three voters, with cfg (the test timings if nil), and a World on each
// whose slots count as lost after lease without a leader.
func semaFleet(t *testing.T, cfg *cluster.ServerConfig, lease time.Duration) (*clustertest.Fleet, []semaHost) {
	t.Helper()
	f := clustertest.NewFleet(t, 3, cfg)
	s0 := f.Slots[0]
	first := f.Start(s0, nil)
	for _, s := range f.Slots[1:] {
		f.Start(s, func(c *cluster.ServerConfig) { c.Join = []string{s0.GossipAddr()} })
	}
	waitFor(t, "three voters", func() bool {
		servers, err := first.Node().Configuration()
		return err == nil && len(servers) == 3 &&
			!slices.ContainsFunc(servers, func(s raft.Server) bool { return s.Suffrage != raft.Voter })
	})
	var hosts []semaHost
	for _, s := range f.Slots {
		w, err := world.New(s.Server().Node(), s.ID, nil, world.WithLeaseTimeout(lease))
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, semaHost{slot: s, w: w})
	}
	return f, hosts
}

// runJob starts an engine for h running one job of duration d under the
// sema tag.
func runJob(t *testing.T, h semaHost, tag string, d time.Duration, tl *timeline) *run {
	g := engine.NewGraph("jobs")
	v := engine.Vertex{ID: engine.ID{Kind: "job", Name: "x"}, Res: &job{host: h.slot.ID, d: d, tl: tl},
		Meta: engine.Meta{Sema: []string{tag}}}
	if err := g.AddVertex(v); err != nil {
		t.Fatal(err)
	}
	return start(t, g, func(c *engineConfig) {
		c.Hostname = h.slot.ID
		c.ClusterSemaphores = h.w
	})
}

// Three hosts each run a 2 s job under one cluster semaphore: with one
// slot the runs never overlap; with two, exactly two overlap and never
// three.
func TestClusterSemaphoreRunsNeverOverlap(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		want int
	}{{"@@x:1", 1}, {"@@x:2", 2}} {
		t.Run(tc.tag, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, hosts := semaFleet(t, nil, testLease())
				tl := &timeline{}
				var runs []*run
				for _, h := range hosts {
					runs = append(runs, runJob(t, h, tc.tag, 2*time.Second, tl))
				}
				waitFor(t, "three runs", func() bool { return tl.ended() == 3 })
				spans := tl.all()
				for _, s := range spans {
					if s.err != nil || s.end.Sub(s.start) != 2*time.Second {
						t.Errorf("%s ran %v: %v", s.host, s.end.Sub(s.start), s.err)
					}
				}
				if got := maxOverlap(spans); got != tc.want {
					t.Errorf("at most %d runs at once, want %d: %+v", got, tc.want, spans)
				}
				for _, r := range runs {
					if err := r.stop(); err != nil {
						t.Error(err)
					}
				}
			})
		})
	}
}

// The holder of @@x:1 dies (its cluster server is killed mid-run): another
// host starts within the bound README documents, and not before the dead
// holder's run was cancelled, its slot lost once it had no word from a
// leader for its World's lease timeout.
func TestClusterSemaphoreHolderKilledAnotherStartsWithinBound(t *testing.T) {
	prod := cluster.DefaultServerConfig()
	prod.GossipBind, prod.Raft.BindAddr = "127.0.0.1:0", "127.0.0.1:0"
	for _, tc := range []struct {
		name   string
		cfg    *cluster.ServerConfig
		lease  time.Duration
		d      time.Duration // the job's length: past the kill
		bound  time.Duration
		leader bool // the holder is the cluster's leader
	}{
		{"test timings", nil, testLease(), 2 * time.Second, time.Second, false},
		{"test timings, leader holds", nil, testLease(), 2 * time.Second, time.Second, true},
		{"production timings", &prod, world.DefaultLeaseTimeout, time.Minute, 12 * time.Second, false},
		{"production timings, leader holds", &prod, world.DefaultLeaseTimeout, time.Minute, 12 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, hosts := semaFleet(t, tc.cfg, tc.lease)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				leader, err := f.Leader(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var holder semaHost
				var others []semaHost
				for _, h := range hosts {
					if (h.slot == leader) == tc.leader && holder.slot == nil {
						holder = h
					} else {
						others = append(others, h)
					}
				}
				tl := &timeline{}
				runs := []*run{runJob(t, holder, "@@x:1", tc.d, tl)}
				waitFor(t, "the holder running", func() bool { return len(tl.all()) == 1 })
				for _, h := range others {
					runs = append(runs, runJob(t, h, "@@x:1", tc.d, tl))
				}
				waitFor(t, "two waiters", func() bool {
					st, _ := others[0].slot.FSM().Sema("x")
					return len(st.Waiters) == 2
				})
				<-time.After(tc.d / 4)
				t0 := time.Now()
				f.Kill(holder.slot)
				took := waitFor(t, "another host running", func() bool { return len(tl.all()) == 2 })
				spans := tl.all()
				t.Logf("holder killed: its run cancelled %v later (%v); another host started %v later",
					spans[0].end.Sub(t0), spans[0].err, took)
				if took > tc.bound {
					t.Errorf("another host started %v after the holder was killed, want within %v", took, tc.bound)
				}
				if spans[0].end.IsZero() || spans[0].end.After(spans[1].start) || !errors.Is(spans[0].err, engine.ErrClusterSemaphoreLost) {
					t.Errorf("the dead holder's run %+v was not cancelled for its lost slot before %s started", spans[0], spans[1].host)
				}
				for _, r := range runs {
					if err := r.stop(); err != nil {
						t.Error(err)
					}
				}
			})
		})
	}
}
