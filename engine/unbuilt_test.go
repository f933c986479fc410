package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
)

// A tag starting with @@ names a semaphore of the cluster: its id keeps
// the @@, so it is never taken for the host's semaphore of the same name,
// and its name follows the rules of local ones.
func TestClusterSemaphoreTagIsNotTakenForALocalOne(t *testing.T) {
	for tag, want := range map[string]struct {
		id    string
		count int64
	}{"@@lock": {"@@lock", 1}, "@@lock:2": {"@@lock", 2}, "@@ns:db:3": {"@@ns:db", 3}} {
		id, count, err := engine.ParseSema(tag)
		if err != nil || id != want.id || count != want.count {
			t.Errorf("ParseSema(%q) = %q, %d, %v; want %q, %d", tag, id, count, err, want.id, want.count)
		}
	}
	for tag, want := range map[string]string{
		"@@":                            "empty",
		"@@:2":                          "empty",
		"@@12":                          "bare number",
		"@@x:0":                         "positive",
		"@@" + strings.Repeat("x", 257): "at most 256",
	} {
		if _, _, err := engine.ParseSema(tag); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSema(%q): %v, want an error saying %q", tag, err, want)
		}
	}
}

// An engine with no cluster refuses a graph holding a cluster semaphore
// when it loads, naming the vertex and the tag, and keeps running the
// graph it has.
func TestClusterSemaphoreNeedsACluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogCapture()
		rec := newRecorder()
		a := newFake(rec, "a")
		r := start(t, graphOf(t, []*fake{a}), func(c *engineConfig) { c.Logger = slogOf(logs) })
		synctest.Wait()
		checks(t, map[*fake]int{a: 1})

		b := newFake(rec, "b")
		r.graphs <- graphOfVertices(t, []engine.Vertex{{ID: id("a"), Res: a},
			{ID: id("b"), Res: b, Meta: engine.Meta{Sema: []string{"local", "@@db:2"}}}})
		synctest.Wait()
		if b.inits.Load() != 0 {
			t.Fatal("a graph with a cluster semaphore was run by an engine without a cluster")
		}
		rejected := logs.records("graph rejected; keeping the running one")
		if len(rejected) != 1 {
			t.Fatalf("got %d rejections, want 1", len(rejected))
		}
		want := `fake[b]: meta: sema "@@db:2": ` + engine.ErrNoClusterSemaphores.Error()
		if err := rejected[0].attrs["err"]; err != want {
			t.Errorf("rejected with %q, want %q", err, want)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A cluster semaphore's count above what the cluster keeps is refused when
// the graph loads, naming the tag, rather than failing every run of the
// resource.
func TestClusterSemaphoreCountAboveTheClustersLimitRefusedAtLoad(t *testing.T) {
	if _, _, err := engine.ParseSema(fmt.Sprintf("@@x:%d", fsm.MaxSemaCount)); err != nil {
		t.Errorf("the largest count the cluster keeps: %v", err)
	}
	tag := fmt.Sprintf("@@x:%d", fsm.MaxSemaCount+1)
	_, _, err := engine.ParseSema(tag)
	want := fmt.Sprintf("%q: a cluster semaphore has at most %d slots", tag, fsm.MaxSemaCount)
	if err == nil || err.Error() != want {
		t.Errorf("ParseSema(%s): %v, want %q", tag, err, want)
	}
	if _, _, err := engine.ParseSema(tag[2:]); err != nil {
		t.Errorf("a local semaphore has no such limit: %v", err)
	}
}
