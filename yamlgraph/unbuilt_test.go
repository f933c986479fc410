package yamlgraph_test

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/yamlgraph"
)

// Exported resources and collect were refused in words naming an internal
// part ("the cluster World"), and an edge to a refused resource added a
// second, misleading error. Each is refused once, at its line, saying it is
// not built yet. A cluster-wide semaphore (sema "@@lock:2") is built: it
// parses, and the engine holds it in the cluster.
func TestUnbuiltFeaturesAreRefusedInPlainWords(t *testing.T) {
	src := `---
graph: mygraph
resources:
  file:
  - name: "@@filea"
    path: /tmp/mgmtA/fA
    content: |
      i am fA, exported from host A
    state: exists
  noop:
  - name: n
    meta:
      sema: ["@@lock:2"]
  - name: m
collect:
- kind: file
  pattern: /tmp/mgmtA/
edges:
- from: {kind: noop, name: m}
  to: {kind: file, name: "@@filea"}
`
	_, err := yamlgraph.Parse("etcd1a.yaml", []byte(src), registry())
	if err == nil {
		t.Fatal("parsed without an error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		`etcd1a.yaml:15:1: collect: collecting the resources other hosts export is not built yet`,
		`etcd1a.yaml:5:11: file "@@filea": exporting a resource to other hosts (a name starting with @@) is not built yet`,
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
