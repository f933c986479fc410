package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The reconciler's decisions, on views made by hand: neither raft nor
// memberlist runs. The node planning is "a"; the cluster's ID is "c1".

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func voter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":7000"), Suffrage: raft.Voter}
}

func nonvoter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":7000"), Suffrage: raft.Nonvoter}
}

func member(id string) ringMember {
	return ringMember{name: id, meta: Meta{Cluster: "graft", ClusterID: "c1", RaftAddr: id + ":7000"}}
}

// leaderView is a view of a on the leader in term 1, leading for an hour,
// with servers in raft, every one of them alive in the ring and answering
// the probe caught up.
func leaderView(servers ...raft.Server) view {
	v := view{leader: true, term: 1, now: t0, self: "a", clusterID: "c1", servers: servers, lastIndex: 1000,
		progress: map[string]uint64{}, alive: map[string]ringMember{}, gone: map[string]goneNode{},
		departed: map[string]time.Time{}, exporting: map[string]bool{},
		lead: leaderState{}.in(1, t0.Add(-time.Hour)),
		cfg: planConfig{voters: 5, deadServerGrace: 30 * time.Second, releaseGrace: 2 * time.Second,
			stabilization: 10 * time.Second, catchupLag: 256, exportGrace: time.Minute}}
	for _, srv := range servers {
		id := string(srv.ID)
		v.alive[id] = member(id)
		if id != "a" {
			v.progress[id] = 1000
		}
	}
	return v
}

// down makes ids down: out of the ring, not answering.
func down(v *view, ids ...string) {
	for _, id := range ids {
		delete(v.alive, id)
		delete(v.progress, id)
	}
}

// dead makes id down and reported dead (or left) at.
func dead(v *view, id string, left bool, at time.Time) {
	down(v, id)
	v.gone[id] = goneNode{left: left, at: at}
}

// stable makes the non-voters ids caught up for Stabilization already.
func stable(v *view, ids ...string) {
	for _, id := range ids {
		v.lead.healthySince[id] = t0.Add(-v.cfg.stabilization)
	}
}

// describe names an action in a row's want: its kind, server and flags.
func describe(a action) string {
	s := a.kind.String() + " " + a.server
	for _, f := range []struct {
		on   bool
		name string
	}{{a.voter, "voter"}, {a.left, "left"}, {a.warn, "warn"}} {
		if f.on {
			s += " " + f.name
		}
	}
	return s
}

func describeAll(acts []action) []string {
	var out []string
	for _, a := range acts {
		out = append(out, describe(a))
	}
	return out
}

type planRow struct {
	name  string
	view  func() view
	want  []string
	check func(t *testing.T, p planned)
}

func runPlanRows(t *testing.T, rows []planRow) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			v := r.view()
			p := plan(v)
			if got := describeAll(p.actions); !slices.Equal(got, r.want) {
				t.Errorf("actions:\n got  %q\n want %q", got, r.want)
			}
			for _, a := range p.actions {
				if a.reason == "" || len(a.attrs) == 0 {
					t.Errorf("%s: no reason to log", describe(a))
				}
			}
			if r.check != nil {
				r.check(t, p)
			}
			// Planning again gives the same: plan keeps no state and
			// changed nothing in the view.
			if again := describeAll(plan(v).actions); !slices.Equal(again, describeAll(p.actions)) {
				t.Errorf("a second plan of the same view differs: %q", again)
			}
		})
	}
}

func TestPlanLeadership(t *testing.T) {
	runPlanRows(t, []planRow{{
		name: "a follower plans nothing and remembers nothing",
		view: func() view {
			v := leaderView(voter("a"), voter("b"), voter("c"), nonvoter("d"))
			v.leader = false
			dead(&v, "c", true, t0)
			v.alive["e"] = member("e")
			return v
		},
		check: func(t *testing.T, p planned) {
			if p.lead.failedSince != nil || p.lead.term != 0 {
				t.Errorf("a follower remembers %+v", p.lead)
			}
		},
	}, {
		name: "a new term starts the leader's clocks afresh",
		view: func() view {
			v := leaderView(voter("a"), voter("b"), voter("c"))
			down(&v, "c")
			v.lead.failedSince["c"] = t0.Add(-time.Hour)
			v.term = 2
			return v
		},
		check: func(t *testing.T, p planned) {
			if p.lead.term != 2 || !p.lead.since.Equal(t0) || len(p.lead.failedSince) != 0 {
				t.Errorf("state in the new term: %+v", p.lead)
			}
		},
	}, {
		name: "a healthy cluster needs nothing",
		view: func() view { return leaderView(voter("a"), voter("b"), voter("c")) },
	}})
}

func TestPlanJoins(t *testing.T) {
	withRing := func(m ringMember, mod func(*view)) func() view {
		return func() view {
			v := leaderView(voter("a"))
			v.alive[m.name] = m
			if mod != nil {
				mod(&v)
			}
			return v
		}
	}
	b := member("b")
	leaving, other, ownState, ownStateOfThis := b, b, b, b
	leaving.meta.Leaving = true
	other.meta.ClusterID = "c2"
	ownState.meta.ClusterID, ownState.meta.State = "", true
	ownStateOfThis.meta.State = true
	fresh := b
	fresh.meta.ClusterID = ""
	runPlanRows(t, []planRow{
		{name: "a server alive in the ring but not in raft joins as a non-voter", view: withRing(b, nil),
			want: []string{"add-nonvoter b"}, check: func(t *testing.T, p planned) {
				if p.actions[0].addr != "b:7000" {
					t.Errorf("added at %q", p.actions[0].addr)
				}
			}},
		{name: "a fresh server joins a cluster that has no ID yet", want: []string{"add-nonvoter b"},
			view: withRing(fresh, func(v *view) { v.clusterID = "" })},
		{name: "a server that asked the leader to leave is not added back",
			view: withRing(b, func(v *view) { v.departed["b"] = t0.Add(-time.Second) })},
		{name: "a server gossiping that it leaves is not added", view: withRing(leaving, nil)},
		{name: "a server of another cluster is not added", view: withRing(other, nil)},
		{name: "a server on raft state that names no cluster is not added", view: withRing(ownState, nil)},
		{name: "a server of a cluster is not added while this one has no ID",
			view: withRing(ownStateOfThis, func(v *view) { v.clusterID = "" })},
		{name: "a server on raft state of this cluster is added", view: withRing(ownStateOfThis, nil),
			want: []string{"add-nonvoter b"}},
		{name: "a voter whose cluster address changed stays a voter at the new one",
			view: func() view {
				v := leaderView(voter("a"), voter("b"), nonvoter("c"))
				v.alive["b"] = ringMember{name: "b", meta: Meta{Cluster: "graft", ClusterID: "c1", RaftAddr: "b:7001"}}
				v.alive["c"] = ringMember{name: "c", meta: Meta{Cluster: "graft", ClusterID: "c1", RaftAddr: "c:7001"}}
				return v
			},
			want: []string{"readdress b voter", "readdress c"},
			check: func(t *testing.T, p planned) {
				if p.actions[0].addr != "b:7001" || p.actions[1].addr != "c:7001" {
					t.Errorf("readdressed to %q, %q", p.actions[0].addr, p.actions[1].addr)
				}
			}},
		{name: "this node's own address change is followed too",
			view: func() view {
				v := leaderView(voter("a"), voter("b"), voter("c"))
				v.alive["a"] = ringMember{name: "a", meta: Meta{Cluster: "graft", ClusterID: "c1", RaftAddr: "a:7001"}}
				return v
			},
			want: []string{"readdress a voter"}},
	})
}

func TestPlanPromotions(t *testing.T) {
	spares := func(mod func(*view), servers ...raft.Server) func() view {
		return func() view {
			v := leaderView(servers...)
			for _, srv := range servers {
				if srv.Suffrage != raft.Voter {
					stable(&v, string(srv.ID))
				}
			}
			if mod != nil {
				mod(&v)
			}
			return v
		}
	}
	three := []raft.Server{voter("a"), voter("b"), nonvoter("c")}
	sinceIs := func(id string, want time.Time, in bool) func(*testing.T, planned) {
		return func(t *testing.T, p planned) {
			if got, ok := p.lead.healthySince[id]; ok != in || in && !got.Equal(want) {
				t.Errorf("caught up since %v (%v), want %v (%v)", got, ok, want, in)
			}
		}
	}
	runPlanRows(t, []planRow{
		{name: "a non-voter caught up for Stabilization is promoted while voters are short",
			view: spares(nil, three...), want: []string{"promote c"}},
		{name: "a non-voter caught up for less than Stabilization waits",
			view:  spares(func(v *view) { v.lead.healthySince["c"] = t0.Add(-9 * time.Second) }, three...),
			check: sinceIs("c", t0.Add(-9*time.Second), true)},
		{name: "a non-voter first seen caught up starts its Stabilization clock",
			view: spares(func(v *view) { delete(v.lead.healthySince, "c") }, three...), check: sinceIs("c", t0, true)},
		{name: "a non-voter more than CatchupLag behind is not caught up and its clock stops",
			view: spares(func(v *view) { v.progress["c"] = 1000 - 257 }, three...), check: sinceIs("c", time.Time{}, false)},
		{name: "a non-voter exactly CatchupLag behind is caught up",
			view: spares(func(v *view) { v.progress["c"] = 1000 - 256 }, three...), want: []string{"promote c"}},
		{name: "a non-voter in the ring that does not answer the probe is not promoted",
			view: spares(func(v *view) { delete(v.progress, "c") }, three...), check: sinceIs("c", time.Time{}, false)},
		{name: "voters are kept at the largest odd number the servers up allow",
			view: spares(nil, voter("a"), voter("b"), nonvoter("c"), nonvoter("d")), want: []string{"promote c"}},
		{name: "two spares are promoted in one pass to fill five seats",
			view: spares(nil, voter("a"), voter("b"), voter("c"), nonvoter("d"), nonvoter("e")),
			want: []string{"promote d", "promote e"}},
		{name: "no more than Voters voters",
			view: spares(nil, voter("a"), voter("b"), voter("c"), voter("d"), voter("e"), nonvoter("f"))},
		{name: "no more than Voters voters when Voters is 3",
			view: spares(func(v *view) { v.cfg.voters = 3 }, voter("a"), voter("b"), voter("c"), nonvoter("d"), nonvoter("e"))},
		{name: "a spare takes the seat of a voter that is down",
			view: spares(func(v *view) { dead(v, "c", false, t0) }, voter("a"), voter("b"), voter("c"), nonvoter("d")),
			want: []string{"promote d"}},
		{name: "a spare that is down is not promoted",
			view: spares(func(v *view) { dead(v, "c", false, t0) }, three...), check: sinceIs("c", time.Time{}, false)},
		// Issue 13: a voter kept the clock it had as a spare, so once it left
		// and was added again, it was promoted at once (0.6 s, on real hosts).
		{name: "a voter keeps no caught-up clock",
			view:  spares(func(v *view) { v.lead.healthySince["b"] = t0.Add(-time.Hour) }, three...),
			want:  []string{"promote c"},
			check: sinceIs("b", time.Time{}, false)},
		{name: "a server out of raft keeps no caught-up clock",
			view:  spares(func(v *view) { v.lead.healthySince["z"] = t0.Add(-time.Hour) }, three...),
			want:  []string{"promote c"},
			check: sinceIs("z", time.Time{}, false)},
	})
}

func TestPlanGraces(t *testing.T) {
	// c is a non-voter: the quorum guard stays out of the way.
	withC := func(mod func(*view)) func() view {
		return func() view {
			v := leaderView(voter("a"), voter("b"), voter("d"), nonvoter("c"))
			mod(&v)
			return v
		}
	}
	failedAt := func(want time.Time) func(*testing.T, planned) {
		return func(t *testing.T, p planned) {
			if got := p.lead.failedSince["c"]; !got.Equal(want) {
				t.Errorf("failed since %v, want %v", got, want)
			}
		}
	}
	runPlanRows(t, []planRow{
		{name: "a server reported dead for less than ReleaseGrace keeps its slots",
			view: withC(func(v *view) { dead(v, "c", false, t0.Add(-time.Second)) }), check: failedAt(t0.Add(-time.Second))},
		{name: "a server reported dead for ReleaseGrace is released but kept in raft until DeadServerGrace",
			view: withC(func(v *view) { dead(v, "c", false, t0.Add(-2*time.Second)) }), want: []string{"release c"}},
		{name: "a server reported dead for DeadServerGrace is removed",
			view: withC(func(v *view) { dead(v, "c", false, t0.Add(-30*time.Second)) }),
			want: []string{"release c", "remove c"}},
		{name: "released slots are not released again",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-29*time.Second))
				v.lead.failedSince["c"], v.lead.released["c"] = t0.Add(-29*time.Second), true
			})},
		{name: "the failure time remembered wins over a later report",
			view: withC(func(v *view) {
				dead(v, "c", false, t0)
				v.lead.failedSince["c"], v.lead.released["c"] = t0.Add(-30*time.Second), true
			}),
			want: []string{"remove c"}},
		{name: "a server that left is released and removed at once",
			view: withC(func(v *view) { dead(v, "c", true, t0) }), want: []string{"release c left", "remove c left"}},
		{name: "a server that asked to leave is released and removed at once though the ring took it for dead",
			view: withC(func(v *view) { dead(v, "c", false, t0); v.departed["c"] = t0 }),
			want: []string{"release c left", "remove c left"}},
		{name: "a server that asked to leave and is still up is not removed by the reconciler",
			view: withC(func(v *view) { v.departed["c"] = t0 })},
		{name: "a new leader acts on nobody it has not seen down for DeadServerGrace",
			view: withC(func(v *view) { down(v, "c"); v.lead.since = t0.Add(-29 * time.Second) }),
			check: func(t *testing.T, p planned) {
				if _, ok := p.lead.failedSince["c"]; ok {
					t.Error("c counted as failed")
				}
			}},
		{name: "a server down and never reported has failed after a full grace as leader",
			view: withC(func(v *view) { down(v, "c"); v.lead.since = t0.Add(-30 * time.Second) }),
			want: []string{"release c", "remove c"}, check: failedAt(t0.Add(-30 * time.Second))},
		{name: "a server up again is forgotten as failed",
			view: withC(func(v *view) {
				v.lead.failedSince["c"], v.lead.released["c"] = t0.Add(-time.Minute), true
			}),
			check: func(t *testing.T, p planned) {
				if _, ok := p.lead.failedSince["c"]; ok || p.lead.released["c"] {
					t.Errorf("still remembered: %+v", p.lead)
				}
			}},
		{name: "a server up since the ring reported it dead has failed ReleaseGrace after it was last up",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-time.Hour))
				v.lead.heardAt["c"] = t0.Add(-3 * time.Second)
			}),
			check: failedAt(t0.Add(-time.Second))},
		{name: "a server up since the ring reported it dead is released twice ReleaseGrace after it was last up",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-time.Hour))
				v.lead.heardAt["c"] = t0.Add(-4 * time.Second)
			}),
			want: []string{"release c"}},
		{name: "a new leader counts a death reported before it led from ReleaseGrace after it began leading",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-time.Hour))
				v.lead.since = t0.Add(-time.Second)
			}),
			check: failedAt(t0.Add(time.Second))},
		{name: "a new leader counts a death reported as it began leading from ReleaseGrace after it began leading",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-time.Second))
				v.lead.since = t0.Add(-time.Second)
			}),
			check: failedAt(t0.Add(time.Second))},
		{name: "a death reported less than ReleaseGrace after the leader last heard from the server counts from ReleaseGrace after that",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-time.Second))
				v.lead.heardAt["c"] = t0.Add(-1500 * time.Millisecond)
			}),
			check: failedAt(t0.Add(500 * time.Millisecond))},
		{name: "a server that answers the probe is heard from, one only alive in the ring is not",
			view: withC(func(v *view) { delete(v.progress, "b") }),
			check: func(t *testing.T, p planned) {
				if got, ok := p.lead.heardAt["c"]; !ok || !got.Equal(t0) {
					t.Errorf("c heard from at %v (%v), want %v", got, ok, t0)
				}
				if got, ok := p.lead.heardAt["b"]; ok {
					t.Errorf("b heard from at %v, though it did not answer", got)
				}
			}},
		{name: "a server whose raft answers are newer than its probe's counts as heard from when raft last heard from it",
			view: withC(func(v *view) {
				dead(v, "c", false, t0.Add(-time.Hour))
				v.lead.heardAt["c"] = t0.Add(-4 * time.Second)
				v.answered = map[string]time.Time{"c": t0.Add(-3 * time.Second)}
			}),
			check: failedAt(t0.Add(-time.Second))},
		{name: "a server down and never reported has not failed until DeadServerGrace after it was last heard from",
			view: withC(func(v *view) {
				down(v, "c")
				v.lead.since = t0.Add(-30 * time.Second)
				v.lead.heardAt["c"] = t0.Add(-3 * time.Second)
			}),
			check: func(t *testing.T, p planned) {
				if at, ok := p.lead.failedSince["c"]; ok {
					t.Errorf("c counted as failed since %v, 3 s after it was last heard from", at)
				}
			}},
		{name: "a server the ring thinks dead that answers the probe is up",
			view: withC(func(v *view) { dead(v, "c", false, t0.Add(-time.Hour)); v.progress["c"] = 1000 })},
	})
}

func TestPlanQuorumGuard(t *testing.T) {
	// a, b and c are voters; c died a minute ago, its slots released.
	cDead := func(mod func(*view), servers ...raft.Server) func() view {
		return func() view {
			v := leaderView(append([]raft.Server{voter("a"), voter("b"), voter("c")}, servers...)...)
			dead(&v, "c", false, t0.Add(-time.Minute))
			v.lead.failedSince["c"], v.lead.released["c"] = t0.Add(-time.Minute), true
			if mod != nil {
				mod(&v)
			}
			return v
		}
	}
	notAnswering := func(id string) func(*view) { return func(v *view) { delete(v.progress, id) } }
	runPlanRows(t, []planRow{
		{name: "a dead voter is removed when the voters left answering the probe are a quorum",
			view: cDead(nil), want: []string{"remove c voter"}},
		{name: "only voters answering the probe count: one the ring shows but that does not answer keeps the dead voter in",
			view: cDead(notAnswering("b")), want: []string{"note c warn"},
			check: func(t *testing.T, p planned) {
				if got := p.actions[0].reason; !strings.Contains(got, "quorum") {
					t.Errorf("reason %q", got)
				}
			}},
		{name: "a voter that answers the probe counts though the ring thinks it dead",
			view: cDead(func(v *view) { delete(v.alive, "b"); v.gone["b"] = goneNode{at: t0} }),
			want: []string{"remove c voter"}},
		{name: "a spare promoted in the pass counts for the quorum",
			view: cDead(func(v *view) { delete(v.progress, "b"); stable(v, "d") }, nonvoter("d")),
			want: []string{"promote d", "remove c voter"}},
		{name: "a promotion that failed in the pass does not count for the quorum",
			view: cDead(func(v *view) {
				delete(v.progress, "b")
				stable(v, "d")
				v.failed = map[actionKey]bool{{actPromote, "d"}: true}
			}, nonvoter("d")),
			want: []string{"note c warn"}},
		{name: "the last voter but one is removed by the survivor",
			view: func() view {
				v := leaderView(voter("a"), voter("c"))
				dead(&v, "c", false, t0.Add(-time.Minute))
				return v
			},
			want: []string{"release c", "remove c voter"}},
		{name: "a dead non-voter is removed whatever the quorum",
			view: func() view {
				v := leaderView(voter("a"), voter("b"), voter("d"), nonvoter("c"))
				delete(v.progress, "b")
				delete(v.progress, "d")
				dead(&v, "c", false, t0.Add(-time.Minute))
				return v
			},
			want: []string{"release c", "remove c"}},
		{name: "of two dead voters of five, both are removed when three answer",
			view: cDead(func(v *view) {
				dead(v, "e", false, t0.Add(-time.Minute))
				v.lead.released["e"] = true
			}, voter("d"), voter("e")),
			want: []string{"remove c voter", "remove e voter"}},
		{name: "of three dead voters of five, none is removed",
			view: cDead(func(v *view) {
				for _, id := range []string{"d", "e"} {
					dead(v, id, false, t0.Add(-time.Minute))
					v.lead.released[id] = true
				}
			}, voter("d"), voter("e")),
			want: []string{"note c warn", "note d warn", "note e warn"}},
	})
}

func TestPlanGoneNodes(t *testing.T) {
	withGone := func(mod func(*view)) func() view {
		return func() view {
			v := leaderView(voter("a"), voter("b"), voter("c"))
			mod(&v)
			return v
		}
	}
	runPlanRows(t, []planRow{
		{name: "a node gone that raft does not have is released after ReleaseGrace",
			view: withGone(func(v *view) { v.gone["x"] = goneNode{at: t0.Add(-2 * time.Second)} }), want: []string{"release x"}},
		{name: "a node gone that raft does not have keeps its slots for ReleaseGrace",
			view: withGone(func(v *view) { v.gone["x"] = goneNode{at: t0.Add(-time.Second)} })},
		{name: "a node that left and raft does not have is released at once",
			view: withGone(func(v *view) { v.gone["x"] = goneNode{left: true, at: t0} }), want: []string{"release x left"}},
		{name: "a node gone that was released is not released again",
			view: withGone(func(v *view) { v.gone["x"] = goneNode{at: t0.Add(-time.Hour)}; v.lead.released["x"] = true })},
		{name: "a node reported gone but alive again is not released",
			view: withGone(func(v *view) { v.gone["x"] = goneNode{at: t0.Add(-time.Hour)}; v.alive["x"] = member("x") }),
			want: []string{"add-nonvoter x"}},
	})
}

func TestPlanExports(t *testing.T) {
	exporting := func(mod func(*view)) func() view {
		return func() view {
			v := leaderView(voter("a"), voter("b"), voter("c"))
			v.exporting["x"] = true
			mod(&v)
			return v
		}
	}
	clock := func(want time.Time, in bool) func(*testing.T, planned) {
		return func(t *testing.T, p planned) {
			if got, ok := p.lead.exportsGone["x"]; ok != in || in && !got.Equal(want) {
				t.Errorf("gone since %v (%v), want %v (%v)", got, ok, want, in)
			}
		}
	}
	runPlanRows(t, []planRow{
		{name: "a node that exports and is gone for good starts the export grace",
			view: exporting(func(*view) {}), want: []string{"note x"}, check: clock(t0, true)},
		{name: "a node gone for good for less than ExportGrace keeps its exports",
			view:  exporting(func(v *view) { v.lead.exportsGone["x"] = t0.Add(-59 * time.Second) }),
			check: clock(t0.Add(-59*time.Second), true)},
		{name: "a node gone for good for ExportGrace has its exports withdrawn",
			view: exporting(func(v *view) { v.lead.exportsGone["x"] = t0.Add(-time.Minute) }), want: []string{"withdraw x"}},
		{name: "a node back in the ring keeps its exports and its clock stops",
			view: exporting(func(v *view) {
				v.lead.exportsGone["x"] = t0.Add(-time.Hour)
				v.alive["x"] = member("x")
			}),
			want: []string{"add-nonvoter x"}, check: clock(time.Time{}, false)},
		{name: "a node still in raft keeps its exports",
			view: exporting(func(v *view) {
				v.servers = append(v.servers, nonvoter("x"))
				v.progress["x"] = 1000
				v.lead.exportsGone["x"] = t0.Add(-time.Hour)
			}),
			check: clock(time.Time{}, false)},
		{name: "a node that no longer exports is forgotten",
			view: exporting(func(v *view) {
				delete(v.exporting, "x")
				v.lead.exportsGone["x"] = t0.Add(-time.Hour)
			}),
			check: clock(time.Time{}, false)},
	})
}
