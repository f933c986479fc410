package main

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/gapi"
)

// With a graph file and --deploys, the file's graph runs until a deploy is
// declared; from then on the newest deploy runs and file edits do not.
func TestDeployReplacesTheFilesGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		file := make(chan *gapi.Declared)
		deploys := make(chan *gapi.Declared)
		out := make(chan *gapi.Declared)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go preferDeploys(ctx, file, deploys, out, slog.New(slog.DiscardHandler))

		file <- &gapi.Declared{Name: "file-1"}
		if d := <-out; d.Name != "file-1" {
			t.Fatalf("ran %q, want the file's graph", d.Name)
		}
		deploys <- &gapi.Declared{Name: "deploy-1"}
		if d := <-out; d.Name != "deploy-1" {
			t.Fatalf("ran %q, want the deploy's graph", d.Name)
		}
		file <- &gapi.Declared{Name: "file-2"}
		synctest.Wait()
		select {
		case d := <-out:
			t.Errorf("ran %q after a deploy: a file edit must not replace the deploy", d.Name)
		default:
		}
	})
}
