package yamlgraph_test

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/gapi/yamlgraph"
)

func warningsOf(t *testing.T, name, src string) []string {
	t.Helper()
	res, err := yamlgraph.Parse(name, []byte(src), registry())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.String())
	}
	return got
}

// mgmt's timer example has an edge from the timer without notify: its exec
// ran once and never again, in silence. The timer is warned about at its
// line, with the edge to fix.
func TestTimerWithoutNotifyEdgeIsWarned(t *testing.T) {
	src := `---
graph: mygraph
comment: timer example
resources:
  timer:
  - name: timer1
    interval: 3
  exec:
  - name: exec1
    cmd: echo hello world
edges:
- name: e1
  from:
    kind: timer
    name: timer1
  to:
    kind: exec
    name: exec1
`
	got := warningsOf(t, "timer1.yaml", src)
	want := `timer1.yaml:6:11: timer "timer1": no edge from it has notify: true, so its ticks reach nothing ` +
		`and exec "exec1" runs once, not on every tick; add notify: true to edge "e1" (line 12)`
	if len(got) != 1 || got[0] != want {
		t.Errorf("warnings %q, want exactly\n  %s", got, want)
	}
}

// A timer with no edge at all is warned about too; one with a notify edge
// is not.
func TestTimerWithoutEdgesIsWarned(t *testing.T) {
	src := `resources:
  timer:
  - name: lonely
    interval: 3
  - name: ticking
    interval: 3
  noop:
  - name: n
edges:
- from: {kind: timer, name: ticking}
  to: {kind: noop, name: n}
  notify: true
`
	got := warningsOf(t, "t.yaml", src)
	want := `t.yaml:3:11: timer "lonely": no edge leaves it, so its ticks reach nothing`
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("warnings %q, want exactly one starting\n  %s", got, want)
	}
}
