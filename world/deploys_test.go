package world_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/graftcm/graft/world"
)

// Deployers on every node of a cluster deploying at once each get a
// number of their own: the numbers are 1..N with no gap and no repeat,
// and each number holds the graph its deployer stored.
func TestConcurrentDeployersNeverShareANumber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		const per = 4
		var mu sync.Mutex
		got := map[uint64]string{}
		var wg sync.WaitGroup
		for i, w := range ws {
			for j := range per {
				wg.Go(func() {
					graph := fmt.Sprintf("graph: g%d-%d\n", i, j)
					n, err := w.Deploy(ctx, "g.yaml", []byte(graph))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if prev, dup := got[n]; dup {
						t.Errorf("deploy %d given to both %q and %q", n, prev, graph)
					}
					got[n] = graph
				})
			}
		}
		wg.Wait()
		ds, _, err := ws[0].Deploys(ctx, world.Linearizable())
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != len(ws)*per {
			t.Fatalf("%d deploys stored, want %d", len(ds), len(ws)*per)
		}
		for i, d := range ds {
			if d.Number != uint64(i+1) || string(d.Graph) != got[d.Number] {
				t.Errorf("deploy at %d: number %d, graph %q; the deployer of %d stored %q",
					i, d.Number, d.Graph, d.Number, got[d.Number])
			}
		}
	})
}

// The newest deploy is the one with the highest number, whichever node
// stored it, and every node selects the same one.
func TestNewestDeployIsTheLastStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 3)
		ctx := t.Context()
		if _, ok, _, err := ws[0].NewestDeploy(ctx); err != nil || ok {
			t.Fatalf("newest deploy of an empty World: found %t, err %v", ok, err)
		}
		for i, w := range ws {
			if _, err := w.Deploy(ctx, fmt.Sprintf("f%d.yaml", i), []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		for _, w := range ws {
			d, ok, _, err := w.NewestDeploy(ctx, world.Linearizable())
			if err != nil || !ok || d.Number != 3 || string(d.Graph) != "2" || d.Origin != "f2.yaml" || d.Host != ws[2].Host() {
				t.Errorf("newest deploy on %s: %+v found %t err %v; want number 3 from %s", w.Host(), d, ok, err, ws[2].Host())
			}
		}
	})
}

// A rollback to N adds a deploy numbered next, holding N's graph and
// saying it rolls back to N; the history before it stays as it was.
func TestRollbackIsANewDeployOfTheOldGraph(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 1)
		w, ctx := ws[0], t.Context()
		for _, g := range []string{"one", "two"} {
			if _, err := w.Deploy(ctx, g+".yaml", []byte(g)); err != nil {
				t.Fatal(err)
			}
		}
		n, err := w.Rollback(ctx, 1)
		if err != nil || n != 3 {
			t.Fatalf("rollback to 1: number %d, err %v; want 3", n, err)
		}
		ds, _, err := w.Deploys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%d %s %s %q", d.Number, d.Origin, d.Graph, d.Note()))
		}
		want := []string{`1 one.yaml one ""`, `2 two.yaml two ""`, `3 one.yaml one "rollback to 1"`}
		if !slices.Equal(got, want) {
			t.Errorf("deploys after the rollback:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if _, err := w.Rollback(ctx, 9); !errors.Is(err, world.ErrNoDeploy) {
			t.Errorf("rollback to a deploy that does not exist: %v, want ErrNoDeploy", err)
		}
		if _, err := w.Rollback(ctx, 3); !errors.Is(err, world.ErrNewestAlready) {
			t.Errorf("rollback to the newest deploy: %v, want a refusal", err)
		}
	})
}

// A graph larger than MaxDeploySize is refused and nothing is stored.
func TestDeployLargerThanTheLimitIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 1)
		w, ctx := ws[0], t.Context()
		if _, err := w.Deploy(ctx, "big.yaml", make([]byte, world.MaxDeploySize+1)); !errors.Is(err, world.ErrDeployTooLarge) {
			t.Errorf("deploying %d bytes: %v, want ErrDeployTooLarge", world.MaxDeploySize+1, err)
		}
		if _, err := w.Deploy(ctx, "max.yaml", make([]byte, world.MaxDeploySize)); err != nil {
			t.Errorf("deploying exactly %d bytes: %v", world.MaxDeploySize, err)
		}
		if ds, _, _ := w.Deploys(ctx); len(ds) != 1 || ds[0].Origin != "max.yaml" {
			t.Errorf("deploys: %d, want only max.yaml", len(ds))
		}
	})
}

// The cluster keeps the newest MaxDeploys deploys, not every deploy ever
// made (each lives in every node's memory and snapshots): the oldest goes
// as a new one is stored, numbers go on from the newest, and a rollback to
// a deploy no longer kept is refused as no such deploy.
func TestDeployHistoryKeepsTheNewestMaxDeploys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ws := worlds(t, 1)
		ctx := t.Context()
		const extra = 3
		for i := range world.MaxDeploys + extra {
			n, err := ws[0].Deploy(ctx, "g.yaml", []byte(fmt.Sprintf("graph: g%d\n", i+1)))
			if err != nil {
				t.Fatal(err)
			}
			if n != uint64(i+1) {
				t.Fatalf("deploy %d numbered %d", i+1, n)
			}
		}
		ds, _, err := ws[0].Deploys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != world.MaxDeploys || ds[0].Number != extra+1 || ds[len(ds)-1].Number != world.MaxDeploys+extra {
			t.Fatalf("%d deploys kept, %d to %d; want %d, %d to %d", len(ds), ds[0].Number, ds[len(ds)-1].Number,
				world.MaxDeploys, extra+1, world.MaxDeploys+extra)
		}
		if _, err := ws[0].Rollback(ctx, 1); !errors.Is(err, world.ErrNoDeploy) {
			t.Errorf("rollback to a deploy no longer kept: %v, want ErrNoDeploy", err)
		}
		n, err := ws[0].Rollback(ctx, extra+1)
		if err != nil || n != world.MaxDeploys+extra+1 {
			t.Errorf("rollback to the oldest deploy kept: deploy %d, %v", n, err)
		}
	})
}
