package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/world"
	"github.com/graftcm/graft/yamlgraph"
)

// runGraphs runs a graph source through the combiner, which publishes
// what its graphs export to the agent's World and merges in what they
// collect, and sends the graphs to run on out until ctx ends.
func runGraphs(ctx context.Context, src gapi.Source, worlds gapi.Worlds, reg *engine.Registry, noop bool,
	log *slog.Logger, out chan<- *engine.Graph) error {
	comb, err := gapi.New(gapi.Config{Worlds: worlds, Decode: yamlgraph.CollectDecoder(reg), Noop: noop,
		Logger: log.With("component", "gapi")})
	if err != nil {
		return err
	}
	return comb.RunSource(ctx, src, out)
}

// worldSwitch holds the World of the agent's current cluster side; a
// restarted side (a move to another cluster) replaces it. It is the
// gapi.Worlds of the agent's graph sources.
type worldSwitch struct {
	mu       sync.Mutex
	w        *world.World
	replaced chan struct{} // closed when w is replaced
}

func newWorldSwitch() *worldSwitch { return &worldSwitch{replaced: make(chan struct{})} }

// Current returns the current World (nil before the first side serves)
// and a channel closed when it is replaced.
func (s *worldSwitch) Current() (*world.World, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w, s.replaced
}

// set makes w the current World.
func (s *worldSwitch) set(w *world.World) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
	close(s.replaced)
	s.replaced = make(chan struct{})
}
