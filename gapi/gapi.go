// Package gapi turns graph sources (mgmt's GAPI: a YAML file, the World's
// deploys) into the graphs the engine runs, publishing what each declared
// graph exports to the World and merging in the resources it collects.
//
// A source sends *Declared values; a Combiner keeps the newest, publishes
// its Exports as this host's whole export set (never with Config.Noop),
// and merges into a fresh Build of it the exports of every host, this one
// included, that its Collects select (see Collect.Matches) and that are
// exported to this host. The rules, the same on every host:
//
//   - For kind file a Collect's pattern is the directory the collected
//     file goes in (the Decoder applies it); for other kinds it is a
//     path.Match glob on the exported name.
//   - Two hosts exporting one kind and name differently: the export of the
//     host first by name is collected, and the clash logged.
//   - A collected resource with a local resource's kind and name, or one
//     that makes the graph invalid (it manages what another resource
//     manages), is left out and logged; the rest of the graph runs.
//   - A collected resource that goes away stops being managed; what it
//     made on disk stays, as in mgmt.
//   - Nothing is collected from a World until its local copy has been
//     brought up to date with the cluster once (a linearizable read): a
//     restarted node's copy is an old snapshot.
//   - This host's exports, withdrawn by the cluster while the process
//     lives on (it was removed, then came back), are published again, at
//     most once per RetryDelay.
//
// Exports outlive the process: stopping the combiner withdraws nothing
// (the cluster withdraws the exports of a host gone for good, after its
// export grace).
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
// Pattern, a path.Match glob (empty: every name), except for kind file,
// where every exported file is selected and Pattern is the directory
// collected files are put in, as in mgmt.
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
