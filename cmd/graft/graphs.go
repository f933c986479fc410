package main

import (
	"context"
	"log/slog"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// runGraphs runs the declared graphs of in through the combiner, which
// publishes what they export to the agent's World and merges in what they
// collect, and sends the graphs to run on out until ctx ends.
func runGraphs(ctx context.Context, in <-chan *gapi.Declared, worlds gapi.Worlds, reg *engine.Registry, noop bool,
	log *slog.Logger, out chan<- *engine.Graph) error {
	comb, err := gapi.New(gapi.Config{Worlds: worlds, Decode: yamlgraph.CollectDecoder(reg), Noop: noop,
		Logger: log.With("component", "gapi")})
	if err != nil {
		return err
	}
	return comb.Run(ctx, in, out)
}
