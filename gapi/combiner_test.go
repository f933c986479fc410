package gapi_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

const twoExports = `
resources:
  file:
  - name: "@@fa"
    path: /etc/fa
    content: a
  - name: "@@fb"
    path: /etc/fb
    content: b
  noop:
  - name: local
`

// The newest declared graph's exports are this host's whole export set in
// the World: one dropped from the graph is withdrawn, and one that did not
// change is not written again. The engine gets the local resources only.
func TestExportSetFollowsTheNewestGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := worlds(t, 3)
		h := startCombiner(t, gapi.Static(ws[0]), false)
		h.declare(t, twoExports)
		h.await(t, "the local resource", is("noop[local]"))
		host := ws[0].Host()
		waitFor(t, "both exports in the World", func() bool {
			return slices.Equal(exportsOf(t, ws[1], host), []string{"file/fa", "file/fb"})
		})
		rev := func() uint64 {
			kv, ok, err := ws[1].Get(t.Context(), fsm.ExportPrefix+host+"/file/fa")
			if err != nil || !ok {
				t.Fatalf("fa: %t %v", ok, err)
			}
			return kv.ModRev
		}
		before := rev()
		h.declare(t, `
resources:
  file:
  - name: "@@fa"
    path: /etc/fa
    content: a
  noop:
  - name: local
`)
		waitFor(t, "fb withdrawn", func() bool {
			return slices.Equal(exportsOf(t, ws[1], host), []string{"file/fa"})
		})
		if after := rev(); after != before {
			t.Errorf("the unchanged export was written again: revision %d, then %d", before, after)
		}
	})
}

// Under --noop nothing is exported, whatever the graph says; the graph
// still runs.
func TestNoopExportsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := worlds(t, 3)
		h := startCombiner(t, gapi.Static(ws[0]), true)
		h.declare(t, twoExports)
		h.await(t, "the local resource", is("noop[local]"))
		// The fake clock makes this wait exact: a write would have been
		// committed many times over.
		time.Sleep(5 * time.Second)
		if got := exportsOf(t, ws[1], ws[0].Host()); len(got) > 0 {
			t.Errorf("a noop run exported %v", got)
		}
	})
}

// A host collects the exports of every host (its own too) that its
// collects select and that are exported to it: files into the collect's
// directory, other kinds by a glob on their names.
func TestCollectSelectsByKindPatternAndHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := worlds(t, 3)
		hs := make([]*combiner, 3)
		for i := range hs {
			hs[i] = startCombiner(t, gapi.Static(ws[i]), false)
		}
		hs[0].declare(t, `
resources:
  file:
  - name: "@@fa"
    path: /etc/app/fa
    content: a
  - name: fb
    path: /etc/app/fb
    content: b
    meta: {export: [`+ws[1].Host()+`]}
  noop:
  - name: "@@web1"
  - name: "@@db1"
`)
		hs[1].declare(t, `
resources:
  noop:
  - name: "@@web2"
collect:
- {kind: file, pattern: /srv/in}
- {kind: noop, pattern: "web*"}
`)
		hs[2].declare(t, `
resources:
  noop:
  - name: local
collect:
- {kind: file, pattern: /srv/mine}
`)
		hs[1].await(t, "fa, fb, web1 and its own web2", is(`file[fa]=/srv/in/fa("a") file[fb]=/srv/in/fb("b") noop[web1] noop[web2]`))
		hs[2].await(t, "fa only", is(`file[fa]=/srv/mine/fa("a") noop[local]`))
		hs[0].await(t, "nothing collected", is(""))
	})
}

// Clashes resolve the same way on every host and never hold the rest of
// the graph back: of two hosts exporting one kind and name differently,
// the export of the host first by name wins; a local resource wins over a
// collected one of its kind and name; a collected resource that manages
// what a local one manages is left out.
func TestCollectClashesKeepTheRestOfTheGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := worlds(t, 3)
		hs := make([]*combiner, 3)
		for i := range hs {
			hs[i] = startCombiner(t, gapi.Static(ws[i]), false)
		}
		for i, h := range hs[:2] {
			h.declare(t, `
resources:
  file:
  - name: "@@same"
    path: /etc/same
    content: "from `+ws[i].Host()+`"
  - name: "@@mine"
    path: /etc/mine
    content: theirs
  - name: "@@other`+ws[i].Host()+`"
    path: /etc/local
    content: theirs
  - name: "@@ok`+ws[i].Host()+`"
    path: /etc/ok`+ws[i].Host()+`
    content: ok
`)
		}
		first := min(ws[0].Host(), ws[1].Host())
		hs[2].declare(t, `
resources:
  file:
  - name: mine
    path: /srv/in/mine
    content: ours
  - name: local
    path: /srv/in/local
    content: ours
collect:
- {kind: file, pattern: /srv/in}
`)
		want := `file[local]=/srv/in/local("ours") file[mine]=/srv/in/mine("ours") ` +
			`file[ok` + ws[0].Host() + `]=/srv/in/ok` + ws[0].Host() + `("ok") ` +
			`file[ok` + ws[1].Host() + `]=/srv/in/ok` + ws[1].Host() + `("ok") ` +
			`file[same]=/srv/in/same("from ` + first + `")`
		hs[2].await(t, "the clashes resolved", is(want))
	})
}

// worldSwitch is the Worlds of an agent whose cluster side restarts.
type worldSwitch struct {
	mu sync.Mutex
	w  *world.World
	ch chan struct{}
}

func newSwitch(w *world.World) *worldSwitch { return &worldSwitch{w: w, ch: make(chan struct{})} }

func (s *worldSwitch) Current() (*world.World, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w, s.ch
}

func (s *worldSwitch) replace(w *world.World) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
	close(s.ch)
	s.ch = make(chan struct{})
}

// When the World is replaced, the combiner publishes its exports to the
// new one and collects from it.
func TestReplacedWorldGetsTheExportsAndIsCollectedFrom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := worlds(t, 1), worlds(t, 2)
		sw := newSwitch(a[0])
		h := startCombiner(t, sw, false)
		other := startCombiner(t, gapi.Static(b[1]), false)
		other.declare(t, `
resources:
  file:
  - {name: "@@theirs", path: /etc/theirs, content: b}
`)
		other.await(t, "nothing", is(""))
		h.declare(t, `
resources:
  file:
  - {name: "@@ours", path: /etc/ours, content: a}
collect:
- {kind: file, pattern: /srv/in}
`)
		h.await(t, "its own export", is(`file[ours]=/srv/in/ours("a")`))
		sw.replace(b[0])
		h.await(t, "both exports", is(`file[ours]=/srv/in/ours("a") file[theirs]=/srv/in/theirs("b")`))
		waitFor(t, "ours exported in the new World", func() bool {
			return slices.Equal(exportsOf(t, b[1], b[0].Host()), []string{"file/ours"})
		})
	})
}

// A host whose exports the cluster withdrew (it was removed for being
// gone longer than the dead-node grace, then came back, as after a long
// partition, without restarting) publishes them again as soon as it sees
// them go: nothing else would, since its graph did not change.
func TestWithdrawnExportsOfALiveHostArePublishedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		ctx := t.Context()
		leader, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w, err := world.New(c.Members[1].Node(), c.Members[1].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := startCombiner(t, gapi.Static(w), false)
		h.declare(t, twoExports)
		h.await(t, "the local resource", is("noop[local]"))
		waitFor(t, "both exports in the World", func() bool {
			return slices.Equal(exportsOf(t, w, w.Host()), []string{"file/fa", "file/fb"})
		})
		// What the leader does once the host has been gone for good for
		// the export grace.
		res, err := leader.Node().Apply(ctx, []fsm.Command{{Op: fsm.OpRemoveNode, Node: w.Host()}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Members[1].Node().WaitApplied(ctx, res[0].Rev); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "both exports back in the World", func() bool {
			return slices.Equal(exportsOf(t, w, w.Host()), []string{"file/fa", "file/fb"})
		})
	})
}

// A host whose copy of the cluster's state is old (it restarted on an old
// snapshot, or is cut off from the leader) must not run the old exports it
// holds: it collects nothing until its copy is the cluster's, then what
// the hosts export now.
func TestCollectNeverRunsAnOldCopysExports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worldtest.New(t, 3)
		ctx := t.Context()
		exporter := startCombiner(t, gapi.Static(ws[0]), false)
		exporter.declare(t, `
resources:
  file:
  - {name: "@@f", path: /etc/f, content: old}
`)
		exporter.await(t, "nothing", is(""))
		waitFor(t, "the export in the World", func() bool { return len(exportsOf(t, ws[0], ws[0].Host())) == 1 })
		stale := c.Members[2]
		worldtest.WaitRev(stale, ws[0].Rev())
		c.Partition(stale)
		exporter.declare(t, `
resources:
  file:
  - {name: "@@f", path: /etc/f, content: new}
`)
		waitFor(t, "the new export in the World", func() bool {
			kv, ok, err := ws[0].Get(ctx, fsm.ExportPrefix+ws[0].Host()+"/file/f")
			return err == nil && ok && slices.Contains(strings.Split(string(kv.Value), "\n"), "content: new")
		})

		h := startCombiner(t, gapi.Static(ws[2]), false)
		h.declare(t, `
resources:
  noop:
  - name: local
collect:
- {kind: file, pattern: /srv/in}
`)
		if g := h.await(t, "a graph", func(*engine.Graph) bool { return true }); describe(g) != "noop[local]" {
			t.Fatalf("cut off from the cluster, ran %s, want the local resource alone", describe(g))
		}
		c.Heal()
		h.await(t, "the new export", is(`file[f]=/srv/in/f("new") noop[local]`))
	})
}

// Two agents that both call themselves one host (a cloned machine that
// kept its data dir) publish different export sets: each sees its set
// replaced by the other's. Publishing again is then held back, so the two
// do not flood the cluster with writes.
func TestTwoAgentsOfOneHostNameDoNotFloodTheCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clustertest.New(t, 3)
		ctx := t.Context()
		if _, err := c.Leader(ctx); err != nil {
			t.Fatal(err)
		}
		var ws []*world.World
		for _, m := range c.Members[:2] {
			w, err := world.New(m.Node(), "web", nil)
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, w)
		}
		for i, w := range ws {
			h := startCombiner(t, gapi.Static(w), false)
			h.declare(t, fmt.Sprintf("resources:\n  file:\n  - {name: \"@@f%d\", path: /etc/f%d, content: x}\n", i, i))
			h.await(t, "nothing", is(""))
		}
		before := ws[0].Rev()
		time.Sleep(time.Minute) // on the bubble's clock
		if writes := ws[0].Rev() - before; writes > 30 {
			t.Errorf("%d revisions in a minute of two agents of one host name publishing", writes)
		}
	})
}
