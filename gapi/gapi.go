// Package gapi turns graph sources (mgmt's GAPI: a YAML file, the World's
// deploys) into the graphs the engine runs, publishing what each declared
// graph exports to the World and merging in the resources it collects.
package gapi

import (
	"context"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/fsm"
)

// Declared is one graph as a source declares it: what this host runs
// itself, what it exports to other hosts and what it collects from them.
type Declared struct {
	// Name is the graph's name.
	Name string
	// Origin says where the graph came from, for logs: a file's path, or
	// "deploy 7".
	Origin string
	// Build returns a new graph of the resources this host runs itself
	// (exported resources are not in it). Each call returns new resource
	// values: the engine owns every graph it is handed.
	Build func() (*engine.Graph, error)
	// Exports are the resources this host exports, sorted by kind and name.
	Exports []Export
	// Collects say which exported resources this host runs.
	Collects []Collect
}

// Export is one exported resource, as the World stores it.
type Export struct {
	Kind string
	// Name is the resource's name without the "@@" that marks it exported.
	Name string
	// Data is the resource's parameters and metaparameters, encoded so
	// that a Decoder on any host rebuilds it.
	Data []byte
	// Hosts are the hosts it is exported to; empty means every host (the
	// export metaparam's "*").
	Hosts []string
}

// Collect selects exported resources: those of Kind whose name matches
// Pattern (for kind file, Pattern is the directory collected files are put
// in, as in mgmt; see the package documentation).
type Collect struct {
	Kind    string
	Pattern string
}

// Source produces declared graphs: it sends the first as soon as it has
// it, then a new one whenever the declaration changes, until ctx ends. It
// returns nil when ctx ends, or an error if it cannot go on.
type Source interface {
	Run(ctx context.Context, out chan<- *Declared) error
}

// MaxExportData bounds an Export's Data, leaving room in the World's value
// for the hosts it is exported to.
const MaxExportData = fsm.MaxValueSize - 64<<10

// Decoder rebuilds a resource some host exported, as the Collect whose
// pattern selected it says: kind, name (without the @@) and data as
// exported. Each call returns a new resource value.
type Decoder func(kind, name string, data []byte, pattern string) (engine.Vertex, error)
