package gapi_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/world/worldtest"
)

// oneWorld starts a one-node cluster and returns its World.
func oneWorld(t *testing.T) *world.World {
	t.Helper()
	c := clustertest.New(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := world.New(c.Members[0].Node(), c.Members[0].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// switchedWorlds is a Worlds whose World the test replaces.
type switchedWorlds struct {
	mu       sync.Mutex
	w        *world.World
	replaced chan struct{}
}

func (s *switchedWorlds) Current() (*world.World, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w, s.replaced
}

func (s *switchedWorlds) set(w *world.World) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.replaced)
	s.w, s.replaced = w, make(chan struct{})
}

// declare declares a deploy as a graph named after its content; a deploy
// whose content is "bad" cannot be declared.
func declare(d world.Deploy) (*gapi.Declared, error) {
	if string(d.Graph) == "bad" {
		return nil, errors.New("bad graph")
	}
	name := string(d.Graph)
	return &gapi.Declared{Name: name, Build: func() (*engine.Graph, error) { return engine.NewGraph(name), nil }}, nil
}

// The deploy source declares the fallback while there is no deploy, then
// the newest deploy; while the receiver is busy a newer deploy replaces
// the one waiting; a deploy this host cannot declare is skipped; a new
// World's newest deploy is declared whatever its number.
func TestDeploySourceDeclaresTheNewestDeploy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w1 := oneWorld(t)
		ws := &switchedWorlds{w: w1, replaced: make(chan struct{})}
		src := &gapi.DeploySource{Worlds: ws, Declare: declare,
			Fallback: &gapi.Declared{Name: "fallback"}}
		out := make(chan *gapi.Declared)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, out) }()
		next := func() string {
			t.Helper()
			select {
			case d := <-out:
				return d.Name
			case <-time.After(time.Minute):
				t.Fatal("nothing declared within a minute")
				return ""
			}
		}
		if got := next(); got != "fallback" {
			t.Fatalf("with no deploy: declared %q, want the fallback", got)
		}
		for _, g := range []string{"one", "two"} {
			if _, err := w1.Deploy(ctx, "f.yaml", []byte(g)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got := next(); got != "two" {
			t.Errorf("after deploys one and two: declared %q, want two", got)
		}
		if _, err := w1.Deploy(ctx, "f.yaml", []byte("bad")); err != nil {
			t.Fatal(err)
		}
		if _, err := w1.Deploy(ctx, "f.yaml", []byte("four")); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != "four" {
			t.Errorf("after a bad deploy and four: declared %q, want four", got)
		}

		w2 := oneWorld(t)
		if _, err := w2.Deploy(ctx, "f.yaml", []byte("other")); err != nil {
			t.Fatal(err)
		}
		ws.set(w2)
		if got := next(); got != "other" {
			t.Errorf("after the World was replaced: declared %q, want its deploy 1", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// A host whose copy of the cluster's state is old (it restarted on an old
// snapshot, or is cut off from the leader) must not run the old newest
// deploy it holds, nor publish that deploy's exports: it declares nothing
// until its copy is the cluster's, then the cluster's newest deploy.
func TestDeploySourceNeverDeclaresAnOldCopysDeploy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ws := worldtest.New(t, 3)
		ctx := t.Context()
		if _, err := ws[0].Deploy(ctx, "f.yaml", []byte("old")); err != nil {
			t.Fatal(err)
		}
		stale := c.Members[2]
		worldtest.WaitRev(stale, ws[0].Rev())
		c.Partition(stale)
		if _, err := ws[0].Deploy(ctx, "f.yaml", []byte("new")); err != nil {
			t.Fatal(err)
		}
		src := &gapi.DeploySource{Worlds: gapi.Static(ws[2]), Declare: declare}
		out := make(chan *gapi.Declared)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- src.Run(rctx, out) }()
		select {
		case d := <-out:
			t.Fatalf("declared %q from a copy cut off from the cluster", d.Name)
		case <-time.After(30 * time.Second):
		}
		c.Heal()
		select {
		case d := <-out:
			if d.Name != "new" {
				t.Errorf("declared %q, want the cluster's newest deploy", d.Name)
			}
		case <-time.After(time.Minute):
			t.Fatal("nothing declared within a minute of the partition healing")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
