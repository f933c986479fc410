package cluster

import (
	"slices"
	"testing"
	"time"
)

// The executor, on views made by hand and actions done by a stand-in.

// quorumView plans a promotion of d that the removal of the dead voter c
// counts on: b is up in the ring but does not answer the probe.
func quorumView() view {
	v := leaderView(voter("a"), voter("b"), voter("c"), nonvoter("d"))
	delete(v.progress, "b")
	stable(&v, "d")
	dead(&v, "c", false, t0.Add(-time.Minute))
	v.lead.failedSince["c"], v.lead.released["c"] = t0.Add(-time.Minute), true
	return v
}

func TestExecuteStopsOnceLeadershipIsLost(t *testing.T) {
	v := quorumView()
	if got := describeAll(plan(v).actions); !slices.Equal(got, []string{"promote d", "remove c voter"}) {
		t.Fatalf("the view plans %q", got)
	}
	checks := 0
	leading := func() bool { checks++; return checks == 1 }
	var did []string
	execute(v, leading, func(a action) bool { did = append(did, describe(a)); return true })
	if !slices.Equal(did, []string{"promote d"}) || checks != 2 {
		t.Errorf("did %q after %d leadership checks, want the promotion only, then a check that stops the pass", did, checks)
	}
}

func TestExecuteReplansWithoutAFailedPromotion(t *testing.T) {
	var did []string
	execute(quorumView(), func() bool { return true }, func(a action) bool {
		did = append(did, describe(a))
		return a.kind != actPromote
	})
	if want := []string{"promote d", "note c warn"}; !slices.Equal(did, want) {
		t.Errorf("did %q, want %q: the removal counted on the promotion that failed", did, want)
	}
}

func TestExecuteRemembersOnlyWhatSucceeded(t *testing.T) {
	gone := func() view {
		v := leaderView(voter("a"), voter("b"), voter("d"), nonvoter("c"))
		dead(&v, "c", false, t0.Add(-30*time.Second))
		v.exporting["x"] = true
		v.lead.exportsGone["x"] = t0.Add(-time.Minute)
		return v
	}
	if got, want := describeAll(plan(gone()).actions), []string{"release c", "remove c", "withdraw x"}; !slices.Equal(got, want) {
		t.Fatalf("the view plans %q, want %q", got, want)
	}
	var did []string
	st := execute(gone(), func() bool { return true }, func(a action) bool { did = append(did, describe(a)); return true })
	_, failed := st.failedSince["c"]
	_, exportsGone := st.exportsGone["x"]
	if !st.released["c"] || failed || exportsGone || len(did) != 3 {
		t.Errorf("all done (%q): released %v, failed %v, exports gone %v", did, st.released["c"], failed, exportsGone)
	}
	did = nil
	st = execute(gone(), func() bool { return true }, func(a action) bool { did = append(did, describe(a)); return false })
	_, failed = st.failedSince["c"]
	_, exportsGone = st.exportsGone["x"]
	if st.released["c"] || !failed || !exportsGone || len(did) != 3 {
		t.Errorf("all failed (%q): released %v, failed %v, exports gone %v", did, st.released["c"], failed, exportsGone)
	}
}

// The executor plans anew after a failed promotion or removal and goes on
// from where it was: that holds only if a failure changes nothing planned
// before it.
func TestPlanWithAFailedChangeKeepsWhatCameBefore(t *testing.T) {
	v := leaderView(voter("a"), voter("b"), voter("c"), voter("e"), nonvoter("d"), nonvoter("f"), nonvoter("g"))
	stable(&v, "d", "f")
	dead(&v, "c", false, t0.Add(-time.Minute))
	dead(&v, "e", false, t0.Add(-time.Minute))
	dead(&v, "g", true, t0)
	v.alive["h"] = member("h")
	v.gone["x"] = goneNode{at: t0.Add(-time.Minute)}
	all := plan(v).actions
	counted := 0
	for k, a := range all {
		if !a.counted() {
			continue
		}
		counted++
		w := v
		w.failed = map[actionKey]bool{a.key(): true}
		again := plan(w).actions
		if !slices.Equal(describeAll(again[:k]), describeAll(all[:k])) {
			t.Errorf("with %s failed: the plan before it became %q, was %q", describe(a), describeAll(again[:k]), describeAll(all[:k]))
		}
		for _, b := range again {
			if b.key() == a.key() {
				t.Errorf("with %s failed: it is planned again", describe(a))
			}
		}
	}
	if counted < 3 {
		t.Errorf("the view plans %q: too few promotions and removals to tell", describeAll(all))
	}
}
