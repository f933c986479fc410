package gapi

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/world"
)

// Matches reports whether c selects an exported resource of kind called
// name: for kind file every exported file (the pattern is the directory
// it goes in), for other kinds those whose name matches the pattern, a
// path.Match glob (empty matches every name).
func (c Collect) Matches(kind, name string) bool {
	if c.Kind != kind {
		return false
	}
	if kind == "file" || c.Pattern == "" {
		return true
	}
	ok, _ := path.Match(c.Pattern, name)
	return ok
}

// candidate is an exported resource a host collects: one host's export,
// for this host, matching one of its Collects (the first that matches).
type candidate struct {
	host    string
	id      engine.ID
	data    []byte
	pattern string
}

// candidates selects, from every host's exports (keyed by World key), those
// for host that collects selects, sorted by kind, name and host.
func candidates(exports map[string]world.Exported, collects []Collect, host string, log *slog.Logger) []candidate {
	var out []candidate
	for _, x := range exports {
		i := slices.IndexFunc(collects, func(c Collect) bool { return c.Matches(x.Kind, x.Name) })
		if i < 0 {
			continue
		}
		hosts, data, err := decodeEnvelope(x.Data)
		if err != nil {
			log.Warn("ignoring an export this graft cannot read", "from", x.Host, "kind", x.Kind, "name", x.Name, "err", err)
			continue
		}
		if !forHost(hosts, host) {
			continue
		}
		out = append(out, candidate{host: x.Host, id: engine.ID{Kind: x.Kind, Name: x.Name}, data: data, pattern: collects[i].Pattern})
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := strings.Compare(a.id.Kind, b.id.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.id.Name, b.id.Name); c != 0 {
			return c
		}
		return strings.Compare(a.host, b.host)
	})
	return out
}

// signature sums up a selection, so that an unchanged one is not built
// again.
func signature(cs []candidate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range cs {
		fmt.Fprintf(h, "%q %q %q %q %d\n", c.host, c.id.Kind, c.id.Name, c.pattern, len(c.data))
		h.Write(c.data)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// collected is a decoded candidate.
type collected struct {
	host string
	v    engine.Vertex
}

// decodeAll decodes the candidates, one per resource: where several hosts
// export the same kind and name, the first host by name whose export
// decodes wins on every collecting host, and a clash (different data) is
// logged.
func decodeAll(cs []candidate, decode Decoder, log *slog.Logger) []collected {
	var out []collected
	for i := 0; i < len(cs); {
		j := i
		for j < len(cs) && cs[j].id == cs[i].id {
			j++
		}
		var won *candidate
		for k := i; k < j; k++ {
			c := &cs[k]
			if won != nil {
				if !bytes.Equal(c.data, won.data) {
					log.Warn("two hosts export the same resource differently; collecting the export of the host first by name",
						"resource", c.id.String(), "collected_from", won.host, "ignored_from", c.host)
				}
				continue
			}
			v, err := decode(c.id.Kind, c.id.Name, c.data, c.pattern)
			if err != nil {
				log.Error("cannot collect an exported resource", "resource", c.id.String(), "from", c.host, "err", err)
				continue
			}
			v.ID = c.id
			won = c
			out = append(out, collected{host: c.host, v: v})
		}
		i = j
	}
	return out
}

// maxMergeRounds bounds how often merge drops collected resources that
// make the graph invalid and tries again.
const maxMergeRounds = 8

// merge builds the declared graph and adds the collected resources to it,
// with automatic edges. A collected resource that has the kind and name of
// a local one, or makes the graph invalid (it manages what another
// resource manages, say), is left out and logged: the local graph always
// runs.
func merge(build func() (*engine.Graph, error), cols []collected, log *slog.Logger) (*engine.Graph, error) {
	dropped := map[engine.ID]bool{}
	for range maxMergeRounds {
		g, err := build()
		if err != nil {
			return nil, err
		}
		mine := map[engine.ID]bool{}
		for _, c := range cols {
			if dropped[c.v.ID] {
				continue
			}
			if _, local := g.Vertex(c.v.ID); local {
				log.Warn("a collected resource has the kind and name of a local one; running the local one",
					"resource", c.v.ID.String(), "from", c.host)
				dropped[c.v.ID] = true
				continue
			}
			if err := g.AddVertex(c.v); err != nil {
				log.Error("cannot collect an exported resource", "resource", c.v.ID.String(), "from", c.host, "err", err)
				dropped[c.v.ID] = true
				continue
			}
			mine[c.v.ID] = true
		}
		if len(mine) == 0 {
			return g, nil
		}
		engine.AutoEdges(g)
		err = g.Validate()
		if err == nil {
			return g, nil
		}
		bad := culprits(err, mine)
		if len(bad) == 0 {
			bad = mine // none to blame: run the local graph alone
		}
		for id := range bad {
			log.Error("a collected resource does not fit this host's graph; leaving it out",
				"resource", id.String(), "err", err)
			dropped[id] = true
		}
	}
	log.Error("collected resources still do not fit this host's graph; running it without them")
	return build()
}

// culprits returns the collected resources (those in mine) that err, a
// Graph.Validate error, blames.
func culprits(err error, mine map[engine.ID]bool) map[engine.ID]bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	bad := map[engine.ID]bool{}
	for _, e := range errs {
		var ce *engine.ConflictError
		var ve *engine.VertexError
		var ee *engine.EdgeError
		var cy *engine.CycleError
		switch {
		case errors.As(e, &ce):
			if mine[ce.Second] {
				bad[ce.Second] = true
			} else if mine[ce.First] {
				bad[ce.First] = true
			}
		case errors.As(e, &ve) && mine[ve.ID]:
			bad[ve.ID] = true
		case errors.As(e, &ee):
			for _, id := range []engine.ID{ee.To, ee.From} {
				if mine[id] {
					bad[id] = true
					break
				}
			}
		case errors.As(e, &cy):
			for _, id := range cy.Cycle {
				if mine[id] {
					bad[id] = true
				}
			}
		}
	}
	return bad
}
