package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// Every figure is the median of its runs with min and max, and its ratio
// says how many times better graft is, whichever way the figure improves.
func TestFigureIsMedianWithMinMaxAndRatioFavoursTheBetter(t *testing.T) {
	r := newResults()
	for _, v := range []float64{30, 10, 20} {
		r.add("world", "writes", "writes/s", higher, "graft", v)
	}
	for _, v := range []float64{5, 40, 10, 30} {
		r.add("world", "writes", "writes/s", higher, "etcd", v)
	}
	for _, v := range []float64{4, 2, 3} {
		r.add("world", "latency", "ms", lower, "graft", v)
		r.add("world", "latency", "ms", lower, "etcd", 2*v)
	}
	r.finish()
	w, l := r.index["writes"], r.index["latency"]
	if g := w.Systems["graft"]; g.Median != 20 || g.Min != 10 || g.Max != 30 {
		t.Errorf("graft writes %+v, want median 20 of 10-30", g)
	}
	if e := w.Systems["etcd"]; e.Median != 20 || e.Min != 5 || e.Max != 40 {
		t.Errorf("etcd writes %+v, want median 20 (mean of the middle two) of 5-40", e)
	}
	if w.Ratio != 1 || w.Peer != "etcd" {
		t.Errorf("writes ratio %v vs %q, want 1 vs etcd", w.Ratio, w.Peer)
	}
	if l.Ratio != 2 {
		t.Errorf("latency: graft 3ms, etcd 6ms: ratio %v, want 2 (graft twice as good)", l.Ratio)
	}
	var b bytes.Buffer
	if err := r.table(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "20.0 (10.0-30.0)") || !strings.Contains(b.String(), "2.00x vs etcd") {
		t.Errorf("table:\n%s", b.String())
	}
}

// Graft and the peer take turns going first, round by round, so that a
// machine getting busier or quieter does not favour one.
func TestPeerAndGraftAlternateRoundByRound(t *testing.T) {
	for r, want := range [][]string{{"graft", "etcd"}, {"etcd", "graft"}, {"graft", "etcd"}} {
		if got := order(r, "etcd"); !slices.Equal(got, want) {
			t.Errorf("round %d: %v, want %v", r, got, want)
		}
	}
	if got := order(1, ""); !slices.Equal(got, []string{"graft"}) {
		t.Errorf("no peer: %v", got)
	}
}

// The generated random DAG is the same on every run and acyclic: every
// edge points from an earlier noop to a later one.
func TestRandomDAGIsAcyclicAndRepeatable(t *testing.T) {
	g := graphSpec{shape: "dag", n: 1000}
	e := g.edges()
	if len(e) < g.n-1 || !slices.Equal(e, g.edges()) {
		t.Fatalf("%d edges, or not the same twice", len(e))
	}
	for _, x := range e {
		if x[0] >= x[1] {
			t.Fatalf("edge %v goes backwards", x)
		}
	}
}
