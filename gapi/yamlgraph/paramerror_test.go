package yamlgraph_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// Each parameter a resource's Validate finds wrong is reported at its own
// key's line, found from the engine.ParamError the resource returns, not
// from the text of its message; problems that name no parameter stay at
// the resource. Before, the joined problems came as one error at the
// first key their text began with.
func TestEachBadParameterIsReportedAtItsOwnKey(t *testing.T) {
	src := `resources:
  exec:
  - name: x
    cmd: "true"
    creates: relative/path
    env:
      "A=B": c
  - name: y
    cmd: "true"
    meta:
      retry: -2
      burst: 0
      limit: 1
`
	_, err := yamlgraph.Parse("bad.yaml", []byte(src), registry())
	if err == nil {
		t.Fatal("no error")
	}
	var lines []int
	var params []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ye *yamlgraph.Error
		if !errors.As(e, &ye) {
			t.Fatalf("%v is not a *yamlgraph.Error", e)
		}
		lines = append(lines, ye.Line)
		var pe *engine.ParamError
		if errors.As(e, &pe) {
			params = append(params, pe.Param)
		}
	}
	slices.Sort(lines)
	if want := []int{5, 6, 11, 12}; !slices.Equal(lines, want) {
		t.Errorf("errors at lines %v, want %v (creates, env, retry, burst): %v", lines, want, err)
	}
	slices.Sort(params)
	if want := []string{"burst", "creates", "env", "retry"}; !slices.Equal(params, want) {
		t.Errorf("errors.As finds parameters %q, want %q", params, want)
	}
}
