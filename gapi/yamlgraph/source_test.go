package yamlgraph_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/internal/fswatch"
	"github.com/graftcm/graft/resources"
)

// The watcher as a graph source sends a Declared with the file's exports
// and collects, first for the file Open loaded, then for each valid edit;
// an edit that does not parse is logged and sends nothing.
func TestWatcherSourceDeclaresExportsOfEachValidEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.yaml")
	v1 := "graph: v1\nresources:\n  noop:\n  - name: \"@@a\"\n  - name: local\ncollect:\n- {kind: noop}\n"
	writeFile(t, path, v1)
	hub, err := fswatch.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := newRecorder()
	w, err := yamlgraph.Open(yamlgraph.WatchConfig{Path: path, Registry: resources.NewRegistry(resources.Deps{}),
		Files: hub, Logger: slog.New(log)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hubDone, srcDone := make(chan error, 1), make(chan error, 1)
	go func() { hubDone <- hub.Run(ctx) }()
	out := make(chan *gapi.Declared)
	go func() { srcDone <- w.Source().Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-srcDone; err != nil {
			t.Error(err)
		}
		<-hubDone
	}()
	next := func() *gapi.Declared {
		t.Helper()
		select {
		case d := <-out:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("nothing declared within 10s")
			return nil
		}
	}
	d := next()
	if d.Name != "v1" || len(d.Exports) != 1 || d.Exports[0].Name != "a" || len(d.Collects) != 1 {
		t.Fatalf("first: %+v", d)
	}
	writeFile(t, path, "graph: bad\nresources:\n  noop:\n  - name: \"@@a\"\n    colour: red\n")
	log.waitCount(t, "the rejected edit", 1, msgIs(msgRejected))
	writeFile(t, path, "graph: v2\nresources:\n  noop:\n  - name: \"@@b\"\n  - name: local\n")
	d = next()
	if d.Name != "v2" || len(d.Exports) != 1 || d.Exports[0].Name != "b" || len(d.Collects) != 0 {
		t.Fatalf("after the edits: %+v", d)
	}
	g, err := d.Build()
	if err != nil || g.Len() != 1 {
		t.Fatalf("build: %v, %v", g, err)
	}
}
