package main

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/resources"
	"github.com/graftcm/graft/world"
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

// A deployed graph without a graph key is named after its file, as the
// same file run with graft run yaml is (not "deploy 3 (web"), and its
// origin in the logs names the deploy.
func TestDeployedGraphIsNamedAfterItsFile(t *testing.T) {
	reg := resources.NewRegistry(resources.Deps{})
	d := world.Deploy{Number: 3, Origin: "web.yaml", Graph: []byte("resources:\n  noop:\n  - name: n\n")}
	decl, err := declareDeploy(reg, "h")(d)
	if err != nil {
		t.Fatal(err)
	}
	if decl.Name != "web" || decl.Origin != "deploy 3 (web.yaml)" {
		t.Errorf("declared graph %q from %q, want web from deploy 3 (web.yaml)", decl.Name, decl.Origin)
	}
	g, err := decl.Build()
	if err != nil || g.Name != "web" {
		t.Errorf("built graph %v, %v; want web", g, err)
	}
}
