package gapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func registry() *engine.Registry { return resources.NewRegistry(resources.Deps{}) }

// worlds starts a cluster of n nodes and returns a World per node, named
// after its node.
func worlds(t *testing.T, n int) []*world.World {
	t.Helper()
	_, ws := worldtest.New(t, n)
	return ws
}

// combiner is a running Combiner: declare graphs on in, read them on out.
type combiner struct {
	in  chan *gapi.Declared
	out chan *engine.Graph
}

// startCombiner runs a combiner on worlds until the test ends.
func startCombiner(t *testing.T, worlds gapi.Worlds, noop bool) *combiner {
	t.Helper()
	c, err := gapi.New(gapi.Config{Worlds: worlds, Decode: yamlgraph.CollectDecoder(registry()), Noop: noop,
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := &combiner{in: make(chan *gapi.Declared), out: make(chan *engine.Graph)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h.in, h.out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return h
}

// declare parses src and hands it to the combiner.
func (h *combiner) declare(t *testing.T, src string) {
	t.Helper()
	d, _, err := yamlgraph.Declare("graph.yaml", []byte(src), registry(), yamlgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case h.in <- d:
	case <-time.After(time.Minute):
		t.Fatal("the combiner took no graph for a minute")
	}
}

// await reads graphs until one satisfies ok, and returns it.
func (h *combiner) await(t *testing.T, what string, ok func(*engine.Graph) bool) *engine.Graph {
	t.Helper()
	deadline := time.After(time.Minute)
	var last *engine.Graph
	for {
		select {
		case g := <-h.out:
			if ok(g) {
				return g
			}
			last = g
		case <-deadline:
			t.Fatalf("no graph with %s within a minute; last: %s", what, describe(last))
		}
	}
}

// describe lists a graph's resources, with each file's path.
func describe(g *engine.Graph) string {
	if g == nil {
		return "none"
	}
	var out []string
	for _, v := range g.Vertices() {
		s := v.ID.String()
		if f, ok := v.Res.(*resources.File); ok {
			s += "=" + f.Path
			if f.Content != nil {
				s += fmt.Sprintf("(%q)", *f.Content)
			}
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// is returns the test of a graph described as want.
func is(want string) func(*engine.Graph) bool {
	return func(g *engine.Graph) bool { return describe(g) == want }
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exportsOf lists what the World holds as host's exports: kind/name.
func exportsOf(t *testing.T, w *world.World, host string) []string {
	t.Helper()
	xs, _, err := w.Collect(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range xs {
		if x.Host == host {
			out = append(out, x.Kind+"/"+x.Name)
		}
	}
	return out
}

// testLogger shows the combiner's logs with -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
}
