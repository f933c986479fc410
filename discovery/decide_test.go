package discovery

import (
	"slices"
	"testing"
)

func fresh(name, candidate string) Peer {
	return Peer{Name: name, Addr: name + ":7946", Fresh: true, Settled: true, Candidate: candidate}
}

func booted(name, id string) Peer {
	return Peer{Name: name, Addr: name + ":7946", Bootstrapped: true, ClusterID: id}
}

func TestDecideFormingRule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		view      View
		step      Step
		join      []string
		candidate string
		waiting   []string
	}{
		{name: "a lone fresh node waits out its window",
			view: View{Self: "b", Fresh: true}, step: Wait, candidate: "b"},
		{name: "a lone fresh node bootstraps after its window",
			view: View{Self: "b", Fresh: true, Settled: true}, step: Bootstrap, candidate: "b"},
		{name: "the lowest bootstraps once every fresh peer names it",
			view: View{Self: "a", Fresh: true, Settled: true, Peers: []Peer{fresh("b", "a"), fresh("c", "a")}},
			step: Bootstrap, candidate: "a"},
		{name: "the lowest waits for a peer that names another (it hears a node this one does not)",
			view: View{Self: "b", Fresh: true, Settled: true, Peers: []Peer{fresh("c", "a"), fresh("d", "b")}},
			step: Wait, candidate: "b", waiting: []string{"c"}},
		{name: "the lowest waits for a peer that has not heard it yet",
			view: View{Self: "a", Fresh: true, Settled: true, Peers: []Peer{fresh("b", "b")}},
			step: Wait, candidate: "a", waiting: []string{"b"}},
		{name: "the lowest waits for a peer that names it but may still change its mind",
			view: View{Self: "a", Fresh: true, Settled: true, Peers: []Peer{fresh("b", "a"), {Name: "c", Fresh: true, Candidate: "a"}}},
			step: Wait, candidate: "a", waiting: []string{"c"}},
		{name: "a settled node keeps naming the candidate it named, though it hears a lower one since",
			view: View{Self: "c", Fresh: true, Settled: true, Frozen: "b", Peers: []Peer{fresh("a", "a"), fresh("b", "b")}},
			step: Join, join: []string{"b:7946", "a:7946"}, candidate: "b"},
		{name: "a settled node follows when its candidate names a lower one",
			view: View{Self: "c", Fresh: true, Settled: true, Frozen: "b", Peers: []Peer{fresh("a", "a"), fresh("b", "a")}},
			step: Join, join: []string{"a:7946", "b:7946"}, candidate: "a"},
		{name: "a settled node drops a candidate gone quiet",
			view: View{Self: "c", Fresh: true, Settled: true, Frozen: "b", Peers: []Peer{fresh("d", "c")}},
			step: Bootstrap, candidate: "c"},
		{name: "an unsettled node names the lowest it hears",
			view: View{Self: "c", Fresh: true, Frozen: "b", Peers: []Peer{fresh("a", "a"), fresh("b", "b")}},
			step: Wait, candidate: "a"},
		{name: "a node frozen on itself gives way to a lower one",
			view: View{Self: "b", Fresh: true, Settled: true, Frozen: "b", Peers: []Peer{fresh("a", "a")}},
			step: Join, join: []string{"a:7946"}, candidate: "a"},
		{name: "a higher node joins the fresh nodes, its candidate first",
			view: View{Self: "c", Fresh: true, Settled: true, Peers: []Peer{fresh("d", "a"), fresh("a", "a"), fresh("b", "a")}},
			step: Join, join: []string{"a:7946", "b:7946", "d:7946"}, candidate: "a"},
		{name: "a higher node waits out its window too",
			view: View{Self: "c", Fresh: true, Peers: []Peer{fresh("a", "a")}}, step: Wait, candidate: "a"},
		{name: "a late fresh node joins a bootstrapped cluster at once, even if lower",
			view: View{Self: "a", Fresh: true, Peers: []Peer{booted("m", "id1"), fresh("z", "a"), booted("n", "id1")}},
			step: Join, join: []string{"m:7946", "n:7946"}},
		{name: "a fresh node that hears two clusters joins the one with more nodes heard",
			view: View{Self: "a", Fresh: true, Peers: []Peer{booted("x", "id2"), booted("m", "id1"), booted("n", "id1")}},
			step: Join, join: []string{"m:7946", "n:7946"}},
		{name: "a fresh node that hears two clusters as large joins the lower ID",
			view: View{Self: "a", Fresh: true, Peers: []Peer{booted("x", "id2"), booted("m", "id1")}},
			step: Join, join: []string{"m:7946"}},
		{name: "a bootstrapper that does not know its ID yet is joined",
			view: View{Self: "b", Fresh: true, Settled: true, Peers: []Peer{{Name: "a", Addr: "a:7946", Bootstrapped: true}}},
			step: Join, join: []string{"a:7946"}},
		{name: "a restarted node (with raft state) never bootstraps, and joins its cluster's peers",
			view: View{Self: "a", Bootstrapped: true, ClusterID: "id1", Settled: true,
				Peers: []Peer{fresh("b", "b"), booted("c", "id1")}},
			step: Member, join: []string{"c:7946"}},
		{name: "a fresh node restarted mid-window decides again like any fresh node",
			view: View{Self: "b", Fresh: true, Settled: true, Peers: []Peer{fresh("a", "a"), fresh("c", "a")}},
			step: Join, join: []string{"a:7946", "c:7946"}, candidate: "a"},
		{name: "after its window, a node that named a candidate gone quiet since bootstraps once the others name it",
			view: View{Self: "b", Fresh: true, Settled: true, Frozen: "a", Peers: []Peer{fresh("c", "b"), fresh("d", "b")}},
			step: Bootstrap, candidate: "b"},
		{name: "a node that named a candidate gone quiet waits for a peer still frozen on it",
			view: View{Self: "b", Fresh: true, Settled: true, Frozen: "a", Peers: []Peer{fresh("c", "a")}},
			step: Wait, candidate: "b", waiting: []string{"c"}},
		{name: "a fresh node that heard a cluster, gone quiet since, never bootstraps",
			view: View{Self: "b", Fresh: true, Settled: true, SawCluster: true, Peers: []Peer{fresh("c", "b")}},
			step: Wait, candidate: "b"},
		{name: "a fresh node that heard a cluster, gone quiet since, still joins the fresh nodes it names",
			view: View{Self: "c", Fresh: true, Settled: true, SawCluster: true, Peers: []Peer{fresh("b", "b")}},
			step: Join, join: []string{"b:7946"}, candidate: "b"},
		{name: "a node that is not fresh (it remembers peers) never bootstraps",
			view: View{Self: "a", Settled: true, Peers: []Peer{fresh("b", "a")}}, step: Member},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.view)
			if d.Step != tc.step || !slices.Equal(d.Join, tc.join) || d.Candidate != tc.candidate || !slices.Equal(d.Waiting, tc.waiting) {
				t.Errorf("Decide = %+v, want step %v join %v candidate %q waiting %v", d, tc.step, tc.join, tc.candidate, tc.waiting)
			}
		})
	}
}

// Two fresh nodes of one name (cloned images, default host names) drop
// each other's packets as their own name's and would each bootstrap as
// if alone: a node that hears its name from another boot never does.
func TestDecideNameClashNeverBootstraps(t *testing.T) {
	for _, v := range []View{
		{Self: "b", Fresh: true, Settled: true, NameClash: true},
		{Self: "a", Fresh: true, Settled: true, NameClash: true, Peers: []Peer{fresh("b", "a"), fresh("c", "a")}},
	} {
		if d := Decide(v); d.Step != Wait || !d.NameClash {
			t.Errorf("Decide(%+v) = %+v, want Wait with NameClash", v, d)
		}
	}
	// A clash does not keep a node from joining a cluster it hears.
	d := Decide(View{Self: "c", Fresh: true, Settled: true, NameClash: true, Peers: []Peer{booted("a", "id1")}})
	if d.Step != Join {
		t.Errorf("a clashing fresh node hearing a cluster: %+v, want Join", d)
	}
}

func TestDecideNeverMergesAnotherClusterOfTheKey(t *testing.T) {
	d := Decide(View{Self: "a", Bootstrapped: true, ClusterID: "id1", Settled: true,
		Peers: []Peer{booted("b", "id1"), booted("x", "id2"), booted("y", "id2")}})
	if d.Step != Member || !slices.Equal(d.Join, []string{"b:7946"}) {
		t.Fatalf("Decide = %+v, want a member joining b only", d)
	}
	var names []string
	for _, p := range d.Conflicts {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"x", "y"}) {
		t.Errorf("conflicts %v, want x and y", names)
	}
}

// TestDecideTwoNodesThatHearEachOtherNeverBothBootstrap plays every
// order in which two fresh nodes may hear each other's announcements
// (each may have heard the other's older or newer candidate, or, for one
// of them, nothing yet): whatever each sees, at most one bootstraps.
func TestDecideTwoNodesThatHearEachOtherNeverBothBootstrap(t *testing.T) {
	views := func(self, other string) [][]Peer {
		return [][]Peer{nil, {fresh(other, other)}, {fresh(other, self)}, {fresh(other, min(self, other))}}
	}
	for _, va := range views("a", "b") {
		for _, vb := range views("b", "a") {
			// What a node announces is its candidate in its own view: a
			// peer's view of it must be consistent with that.
			da := Decide(View{Self: "a", Fresh: true, Settled: true, Peers: va})
			db := Decide(View{Self: "b", Fresh: true, Settled: true, Peers: vb})
			if len(va) == 0 && len(vb) == 0 || !consistent(va, db.Candidate) || !consistent(vb, da.Candidate) {
				continue // neither heard the other: packets lost for a whole window
			}
			if da.Step == Bootstrap && db.Step == Bootstrap {
				t.Errorf("both bootstrap: a sees %+v, b sees %+v", va, vb)
			}
		}
	}
}

// consistent reports whether a view of a peer matches what the peer
// announces (or the peer was not heard).
func consistent(view []Peer, announced string) bool {
	return len(view) == 0 || view[0].Candidate == announced
}
