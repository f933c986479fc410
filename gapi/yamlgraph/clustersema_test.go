package yamlgraph_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// A sema tag starting with @@ (mgmt's cluster-wide semaphore) reaches the
// engine as written, beside the host's own tags; the same id with two
// counts is refused at its line, as for local ones.
func TestClusterSemaphoreTagsParse(t *testing.T) {
	src := `---
graph: g
resources:
  exec:
  - name: backup
    cmd: "true"
    meta:
      sema: ["@@db:2", "disk"]
`
	res, err := yamlgraph.Parse("g.yaml", []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	v, ok := res.Graph.Vertex(engine.ID{Kind: "exec", Name: "backup"})
	if !ok || !slices.Equal(v.Meta.Sema, []string{"@@db:2", "disk"}) {
		t.Fatalf("vertex %+v found=%t, want sema [@@db:2 disk]", v.Meta, ok)
	}

	_, err = yamlgraph.Parse("g.yaml", []byte(src+`  - name: restore
    cmd: "true"
    meta:
      sema: ["@@db:3"]
`), registry())
	if err == nil || !strings.Contains(err.Error(), `holds semaphore "@@db" with count 2`) {
		t.Errorf("two counts for @@db: %v", err)
	}
}
