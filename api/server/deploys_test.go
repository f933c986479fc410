package server

import (
	"net/http"
	"testing"

	"github.com/graftcm/graft/api"
)

// A deploy through the API is stored and listed with its number, origin,
// host and size; the newest is the current one; a rollback adds a deploy
// of the old graph; bad numbers and a rollback to the newest are refused
// with their status codes.
func TestDeploysThroughTheAPI(t *testing.T) {
	f := newFixture(t, fixtureOpts{deploys: true})
	ctx := t.Context()
	for i, g := range []string{"graph: one\n", "graph: two\n"} {
		n, err := f.client.Deploy(ctx, "g.yaml", []byte(g))
		if err != nil || n != uint64(i+1) {
			t.Fatalf("deploy %d: number %d, err %v", i+1, n, err)
		}
	}
	n, err := f.client.Rollback(ctx, 1)
	if err != nil || n != 3 {
		t.Fatalf("rollback to 1: number %d, err %v", n, err)
	}
	l, err := f.client.Deploys(ctx)
	if err != nil || len(l.Deploys) != 3 {
		t.Fatalf("list: %+v, %v", l, err)
	}
	for i, d := range l.Deploys {
		want := api.DeployInfo{Number: uint64(i + 1), Host: f.world.Host(), Origin: "g.yaml", Size: 11, Current: i == 2, Time: d.Time}
		if i == 2 {
			want.RollbackOf = 1
		}
		if d != want || d.Time.IsZero() {
			t.Errorf("deploy %d listed as %+v, want %+v", i+1, d, want)
		}
	}
	d, err := f.client.GetDeploy(ctx, 3)
	if err != nil || string(d.Graph) != "graph: one\n" || !d.Current {
		t.Errorf("deploy 3: %+v, %v", d, err)
	}
	if _, err := f.client.GetDeploy(ctx, 7); api.StatusCode(err) != http.StatusNotFound {
		t.Errorf("get of a missing deploy: %v, want 404", err)
	}
	if _, err := f.client.Rollback(ctx, 7); api.StatusCode(err) != http.StatusNotFound {
		t.Errorf("rollback to a missing deploy: %v, want 404", err)
	}
	if _, err := f.client.Rollback(ctx, 3); api.StatusCode(err) != http.StatusConflict {
		t.Errorf("rollback to the newest deploy: %v, want 409", err)
	}
	if _, err := f.client.Rollback(ctx, 0); api.StatusCode(err) != http.StatusBadRequest {
		t.Errorf("rollback to deploy 0: %v, want 400", err)
	}
}

// An agent not given deploys answers 501.
func TestDeploysNotServedWithoutADeployer(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if _, err := f.client.Deploys(t.Context()); api.StatusCode(err) != http.StatusNotImplemented {
		t.Errorf("list: %v, want 501", err)
	}
}
