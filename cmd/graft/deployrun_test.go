package main

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
)

// With a graph file and --deploys, the file's graph runs until a deploy is
// declared; from then on the newest deploy runs and file edits do not.
func TestDeployReplacesTheFilesGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		file := make(chan *engine.Graph)
		deploys := make(chan *gapi.Declared)
		out := make(chan *engine.Graph)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go feedEngine(ctx, file, deploys, out, slog.New(slog.DiscardHandler))

		file <- engine.NewGraph("file-1")
		if g := <-out; g.Name != "file-1" {
			t.Fatalf("ran %q, want the file's graph", g.Name)
		}
		deploys <- &gapi.Declared{Name: "d", Build: func() (*engine.Graph, error) { return engine.NewGraph("deploy-1"), nil }}
		if g := <-out; g.Name != "deploy-1" {
			t.Fatalf("ran %q, want the deploy's graph", g.Name)
		}
		file <- engine.NewGraph("file-2")
		synctest.Wait()
		select {
		case g := <-out:
			t.Errorf("ran %q after a deploy: a file edit must not replace the deploy", g.Name)
		default:
		}
	})
}
