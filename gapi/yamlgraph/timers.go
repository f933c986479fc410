package yamlgraph

import (
	"fmt"
	"strings"

	"github.com/graftcm/graft/engine"
)

// timerKind is the kind whose only effect is the refresh it sends over
// notify edges (mgmt's timer).
const timerKind = "timer"

// warnSilentTimers warns about each timer with no notify edge out of it:
// its ticks reach nothing, and whatever follows it runs once. mgmt's own
// timer example is such a graph.
func (p *parser) warnSilentTimers(g *engine.Graph) {
	out := map[engine.ID][]engine.Edge{}
	for _, e := range g.Edges() {
		out[e.From] = append(out[e.From], e)
	}
	for _, v := range g.Vertices() {
		if v.ID.Kind != timerKind {
			continue
		}
		edges := out[v.ID]
		if notifies(edges) {
			continue
		}
		where := fmt.Sprintf("%s %q", v.ID.Kind, v.ID.Name)
		n := p.defined[v.ID]
		if len(edges) == 0 {
			p.l.warn(n, "%s: no edge leaves it, so its ticks reach nothing; add an edge from it with notify: true "+
				"to run a resource on every tick", where)
			continue
		}
		var targets, fixes []string
		for _, e := range edges {
			targets = append(targets, fmt.Sprintf("%s %q", e.To.Kind, e.To.Name))
			fix := p.edgeName[[2]engine.ID{e.From, e.To}]
			if at := p.edgeAt[[2]engine.ID{e.From, e.To}]; at != nil {
				fix += fmt.Sprintf(" (line %d)", at.Line)
			}
			fixes = append(fixes, fix)
		}
		verb := "runs"
		if len(targets) > 1 {
			verb = "run"
		}
		p.l.warn(n, "%s: no edge from it has notify: true, so its ticks reach nothing and %s %s once, "+
			"not on every tick; add notify: true to %s", where, strings.Join(targets, " and "), verb, strings.Join(fixes, " and "))
	}
}

func notifies(edges []engine.Edge) bool {
	for _, e := range edges {
		if e.Notify {
			return true
		}
	}
	return false
}
