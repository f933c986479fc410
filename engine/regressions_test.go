package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
)

// A receiver added next to a sender that is kept (and in state, so it does
// not run again) still gets the sender's value.
func TestNewReceiverOfKeptSenderGetsValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		s := &sender{fake: newFake(rec, "s"), next: "secret"}
		run := start(t, graphOfVertices(t, []engine.Vertex{vtx("s", s)}), nil)
		synctest.Wait()
		r := &receiver{fake: newFake(rec, "r")}
		run.graphs <- sendGraph(t, &sender{fake: newFake(rec, "s"), next: "secret"}, r)
		synctest.Wait()
		if got := r.log(); !slices.Equal(got, []string{"secret (changed)"}) {
			t.Errorf("new receiver saw %q, want [secret (changed)]", got)
		}
		checks(t, map[*fake]int{s.fake: 1})
	})
}

// A noop run only looks: a persisted refresh is still delivered to the
// next real run.
func TestNoopRunKeepsPersistedRefresh(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		a.result = changes
		b.gate, b.ctxAware = make(chan struct{}), true
		r := start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		r.cancel()
		r.eng.Abort()
		r.stop()
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir; c.Noop = true })
		synctest.Wait()
	})
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		if got := b.refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Errorf("real run after a noop run: b saw %v, want [true]", got)
		}
	})
}

// A refresh pending on a group survives the group being renamed (a member
// sorting first joins it).
func TestRegroupKeepsPendingRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		mk := func(names ...string) (*engine.Graph, map[string]*groupable) {
			fs := map[string]*groupable{}
			top := newFake(rec, "top")
			top.result = changes
			vs := []engine.Vertex{vtx("top", top)}
			for _, n := range names {
				f := &groupable{fake: newFake(rec, n), key: "k"}
				fs[n] = f
				vs = append(vs, engine.Vertex{ID: id(n), Res: f, Meta: engine.Meta{Retry: -1, Delay: time.Hour}})
			}
			g := graphOfVertices(t, vs)
			for _, n := range names {
				if err := g.AddEdge(engine.Edge{From: id("top"), To: id(n), Notify: true}); err != nil {
					t.Fatal(err)
				}
			}
			return engine.AutoGroup(g), fs
		}
		g, fs := mk("b", "c")
		fs["b"].result = fails // the group fails: its refresh stays pending
		r := start(t, g, nil)
		synctest.Wait()
		g2, fs2 := mk("a", "b", "c") // the group is now fake[a]
		r.graphs <- g2
		synctest.Wait()
		if got := fs2["c"].refreshLog(); !slices.Equal(got, []bool{true}) {
			t.Errorf("after the group was renamed, c saw refreshes %v, want [true]", got)
		}
	})
}

// A vertex with notify edges run again and again does not rewrite the
// state file each time: its in-flight record stays on disk.
func TestRepeatedRunsDoNotRewriteStateFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "engine-state.json")
	inode := func() uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		a, b := newFake(rec, "a"), newFake(rec, "b")
		start(t, graphOf(t, []*fake{a, b}, "a=>b"), func(c *engineConfig) { c.StateDir = dir })
		synctest.Wait()
		first := inode()
		for range 20 {
			a.event()
			synctest.Wait()
		}
		if inode() != first {
			t.Error("the state file was rewritten by runs that changed nothing on record")
		}
		checks(t, map[*fake]int{a: 21})
	})
}

// watchReader reads a receivable parameter in Watch, as a file resource
// reads its path.
type watchReader struct {
	*fake
	Value *string `yaml:"value"`
	die   chan error
	runs  chan struct{}
}

func (w *watchReader) Watch(ctx context.Context) error {
	_ = w.Value
	w.fake.rt.Load().Running()
	w.runs <- struct{}{}
	select {
	case err := <-w.die:
		return err
	case <-ctx.Done():
		return nil
	}
}

// A Watch restarted (meta retry) while the vertex's CheckApply runs does not
// race with the received values the engine set. Real time: the race
// detector does not see races that a synctest bubble orders.
func TestWatchRestartDoesNotRaceReceivedValues(t *testing.T) {
	rec := newRecorder()
	s := &sender{fake: newFake(rec, "s"), next: "one"}
	w := &watchReader{fake: newFake(rec, "r"), die: make(chan error), runs: make(chan struct{}, 2)}
	w.gate = make(chan struct{})
	g := graphOfVertices(t, []engine.Vertex{vtx("s", s), {ID: id("r"), Res: w, Meta: engine.Meta{Retry: 1}}})
	if err := g.AddEdge(engine.Edge{From: id("s"), To: id("r"), Keys: []engine.KeyMap{{Send: "out", Recv: "value"}}}); err != nil {
		t.Fatal(err)
	}
	r := start(t, g, nil)
	<-w.runs
	deadline := time.Now().Add(10 * time.Second)
	for !rec.isRunning("r") {
		if time.Now().After(deadline) {
			t.Fatal("r never ran")
		}
		<-time.After(time.Millisecond)
	}
	w.die <- errScripted
	<-w.runs // restarted while r's CheckApply is held by its gate
	close(w.gate)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
