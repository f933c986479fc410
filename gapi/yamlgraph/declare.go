package yamlgraph

import (
	"sync"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
)

// Declare parses a graph file's contents into the graph source form:
// what this host runs (the first Build returns the graph of this parse,
// later ones parse data again, so each graph has resources of its own),
// what it exports and what it collects.
// file names it in errors and is the Declared's Origin; o says which host
// a templated graph is expanded for, on every Build too.
func Declare(file string, data []byte, reg *engine.Registry, o Options) (*gapi.Declared, []Warning, error) {
	res, err := ParseWith(file, data, reg, o)
	if err != nil {
		return nil, nil, err
	}
	return declared(file, data, reg, o, res), res.Warnings, nil
}

// declared makes the Declared of res, the parse of data with o. Its first
// Build hands over res.Graph, which the caller must no longer use: parsing
// a big graph costs more than everything else of a start or a swap, so it
// is not done twice. Later Builds parse data again.
func declared(file string, data []byte, reg *engine.Registry, o Options, res *Result) *gapi.Declared {
	data = append([]byte(nil), data...)
	var (
		mu     sync.Mutex
		parsed = res.Graph
	)
	return &gapi.Declared{
		Name:   res.Graph.Name,
		Origin: file,
		Build: func() (*engine.Graph, error) {
			mu.Lock()
			g := parsed
			parsed = nil
			mu.Unlock()
			if g != nil {
				return g, nil
			}
			r, err := ParseWith(file, data, reg, o)
			if err != nil {
				return nil, err
			}
			return r.Graph, nil
		},
		Exports:  res.Exports,
		Collects: res.Collects,
	}
}
