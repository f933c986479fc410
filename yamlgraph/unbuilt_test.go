package yamlgraph_test

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/yamlgraph"
)

// Cluster-wide semaphores were refused in words naming an internal part
// ("the cluster World"). They are refused once, at their line, saying they
// are not built yet.
func TestUnbuiltFeaturesAreRefusedInPlainWords(t *testing.T) {
	src := `---
graph: mygraph
resources:
  noop:
  - name: n
    meta:
      sema: ["@@lock:2"]
  - name: m
edges:
- from: {kind: noop, name: m}
  to: {kind: noop, name: n}
`
	_, err := yamlgraph.Parse("etcd1a.yaml", []byte(src), registry())
	if err == nil {
		t.Fatal("parsed without an error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		`etcd1a.yaml:7:7: noop "n": meta: sema: "@@lock:2": cluster-wide semaphores (tags starting with @@) are not built yet`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n  %s", len(got), len(want), strings.Join(got, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n  %s\nwant it to start\n  %s", i, got[i], want[i])
		}
		if strings.Contains(got[i], "World") {
			t.Errorf("error %d names an internal part: %s", i, got[i])
		}
	}
}
