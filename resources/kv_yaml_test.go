package resources

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/world"
)

// runYAML parses a graph and runs it on host w's engine until the test
// ends; it returns a channel that receives each time the engine converges.
func runYAML(t *testing.T, w *world.World, res *yamlgraph.Result) <-chan struct{} {
	t.Helper()
	for _, warn := range res.Warnings {
		t.Errorf("warning: %v", warn)
	}
	cfg := engine.DefaultConfig()
	cfg.Hostname, cfg.World, cfg.ConvergedTimeout = w.Host(), w, 0
	return runConverging(t, res.Graph, cfg)
}

func waitConverged(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatal("the engine never converged")
	}
}

// mgmt's kv example runs unchanged: the key holds the value.
func TestKVMgmtExampleRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := kvWorlds(t, 1)[0]
		res, err := yamlgraph.Parse("kv1.yaml", mgmtExample(t, "kv1.yaml"), NewRegistry(Deps{}))
		if err != nil {
			t.Fatal(err)
		}
		waitConverged(t, runYAML(t, w, res))
		if v, ok := kvValue(t, w, "hello"); !ok || v != "world" {
			t.Errorf("hello holds %q (exists %t), want world", v, ok)
		}
	})
}

// The staged example: the stages raise the key in order to 3, and it never
// goes back, not when the graph runs again on another host, whose first
// stages run before its last.
func TestKVStagesNeverRegress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := kvWorlds(t, 2)
		const key = "release/stage"
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		evs := ws[0].Watch(ctx, key, 0)
		load := func() *yamlgraph.Result {
			res, err := yamlgraph.Load("../examples/kv.yaml", NewRegistry(Deps{}))
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		waitConverged(t, runYAML(t, ws[0], load()))
		waitConverged(t, runYAML(t, ws[1], load()))
		if v, _ := kvValue(t, ws[0], key); v != "3" {
			t.Fatalf("%s holds %q, want 3", key, v)
		}
		if err := ws[0].Linearize(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the watch has delivered what the World holds
		var seen []string
		for len(evs) > 0 {
			for _, e := range (<-evs).Events {
				seen = append(seen, string(e.KV.Value))
			}
		}
		prev := 0
		for _, v := range seen {
			n, err := strconv.Atoi(v)
			if err != nil || n < prev {
				t.Fatalf("%s went %v: it went back", key, seen)
			}
			prev = n
		}
		if len(seen) != 3 {
			t.Errorf("%s went %v, want 1, 2, 3 once each", key, seen)
		}
		vals, err := ws[1].KVHostGet(t.Context(), "release/hosts")
		if err != nil || len(vals) != 2 {
			t.Errorf("release/hosts: %q %v, want both hosts' entries", vals, err)
		}
	})
}

// In a graph file, a kv without value (or with value: null) deletes its
// key, value: "" keeps it empty, and an unquoted number is its digits.
func TestKVValueFromYAML(t *testing.T) {
	res, err := yamlgraph.Parse("kv.yaml", []byte(`graph: g
resources:
  kv:
  - name: absent
  - name: "null"
    value: null
  - name: empty
    value: ""
  - name: number
    value: 7
    skiplessthan: true
`), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]*string{"absent": nil, "null": nil, "empty": strptr(""), "number": strptr("7")} {
		v, ok := res.Graph.Vertex(engine.ID{Kind: "kv", Name: name})
		if !ok {
			t.Fatalf("no kv %s", name)
		}
		got := v.Res.(*KV).Value
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("kv %s: value %v, want %v", name, deref(got), deref(want))
		}
	}
	_, err = yamlgraph.Parse("kv.yaml", []byte(`resources: {kv: [{name: k, skipcmpstyle: 3}]}`), NewRegistry(Deps{}))
	if err == nil || !strings.Contains(err.Error(), "kv.yaml:1") || !strings.Contains(err.Error(), "skipcmpstyle") {
		t.Errorf("a bad skipcmpstyle: %v, want an error naming the file, line and parameter", err)
	}
}

// Comparison parameters that do nothing as given are accepted with a
// warning at their line.
func TestKVIgnoredParamsWarn(t *testing.T) {
	res, err := yamlgraph.Parse("kv.yaml", []byte(`resources:
  kv:
  - name: a
    skiplessthan: true
  - name: b
    value: x
    skipcmpstyle: 1
`), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.String())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "kv.yaml:4:5: ") || !strings.Contains(got[0], "skiplessthan: ignored: value is absent") ||
		!strings.HasPrefix(got[1], "kv.yaml:7:5: ") || !strings.Contains(got[1], "skipcmpstyle: ignored: skiplessthan is not set") {
		t.Errorf("warnings %q", got)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<absent>"
	}
	return strconv.Quote(*s)
}
