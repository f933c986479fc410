package yamlgraph_test

import (
	"sync/atomic"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// Declare parses the file once for its first Build: parsing a big graph
// costs more than the rest of a start or a swap. Later Builds parse again,
// so every graph the engine is handed has resources of its own.
func TestDeclareParsesOnceForTheFirstBuildAndAgainForLaterOnes(t *testing.T) {
	var made atomic.Int64
	reg := engine.NewRegistry()
	if err := reg.Add(engine.Kind{Name: "thing", New: func(string) engine.Res {
		made.Add(1)
		return &ignorer{}
	}}); err != nil {
		t.Fatal(err)
	}
	src := "graph: g\nresources:\n  thing:\n  - name: a\n  - name: b\n"
	decl, _, err := yamlgraph.Declare("g.yaml", []byte(src), reg, yamlgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	parsed := made.Load()
	if parsed == 0 {
		t.Fatal("Declare made no resource")
	}
	first, err := decl.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got := made.Load(); got != parsed {
		t.Errorf("the first Build made %d resources more: it parsed the file again", got-parsed)
	}
	second, err := decl.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got := made.Load(); got != 2*parsed {
		t.Errorf("the second Build made %d resources, want %d (a parse of its own)", got-parsed, parsed)
	}
	if first.Len() != 2 || second.Len() != 2 {
		t.Fatalf("graphs of %d and %d vertices, want 2 each", first.Len(), second.Len())
	}
	for _, v := range first.Vertices() {
		w, ok := second.Vertex(v.ID)
		if !ok {
			t.Fatalf("%v is missing from the second Build", v.ID)
		}
		if v.Res == w.Res {
			t.Errorf("%v: both Builds share one resource value", v.ID)
		}
	}
}
