package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/graftcm/graft/engine"
)

// benchRes is the cheapest possible resource: nothing to watch, always in
// state. It measures the engine's own cost.
type benchRes struct{ rt *engine.Runtime }

func (r *benchRes) Validate() error                 { return nil }
func (r *benchRes) Init(rt *engine.Runtime) error   { r.rt = rt; return nil }
func (r *benchRes) Cleanup() error                  { return nil }
func (r *benchRes) Watch(ctx context.Context) error { r.rt.Running(); return nil }
func (r *benchRes) CheckApply(context.Context, bool) (bool, error) {
	return true, nil
}

func benchGraph(b *testing.B, n int, chain bool) *engine.Graph {
	g := engine.NewGraph("bench")
	for i := range n {
		if err := g.AddVertex(engine.Vertex{ID: engine.ID{Kind: "bench", Name: fmt.Sprint(i)}, Res: &benchRes{}}); err != nil {
			b.Fatal(err)
		}
		if chain && i > 0 {
			e := engine.Edge{From: engine.ID{Kind: "bench", Name: fmt.Sprint(i - 1)}, To: engine.ID{Kind: "bench", Name: fmt.Sprint(i)}}
			if err := g.AddEdge(e); err != nil {
				b.Fatal(err)
			}
		}
	}
	return g
}

// convergeOnce runs an engine on g until it converges, then stops it.
func convergeOnce(b *testing.B, g *engine.Graph) {
	converged := make(chan struct{})
	cfg := engine.DefaultConfig()
	cfg.ConvergedTimeout = 0
	cfg.OnConverged = func(s engine.Status) {
		if s.Converged {
			close(converged)
		}
	}
	eng, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	graphs := make(chan *engine.Graph, 1)
	graphs <- g
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, graphs) }()
	<-converged
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConverge measures how fast graphs of trivial resources converge
// from scratch: a chain (every vertex waits for the previous one) and a wide
// graph (no edges, all in parallel).
func BenchmarkConverge(b *testing.B) {
	for _, shape := range []struct {
		name  string
		chain bool
	}{{"chain", true}, {"wide", false}} {
		for _, n := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/%d", shape.name, n), func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					g := benchGraph(b, n, shape.chain)
					b.StartTimer()
					convergeOnce(b, g)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
			})
		}
	}
}
