package yamlgraph

import (
	"math"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/time/rate"

	"github.com/graftcm/graft/engine"
)

// metaYAML is a resource's meta mapping, with mgmt's names, types and units.
// Pointers tell a key that is absent from one set to its zero value.
type metaYAML struct {
	Noop       *bool    `yaml:"noop"`
	Retry      *int16   `yaml:"retry"`      // -1 for ever
	RetryReset *bool    `yaml:"retryreset"` //
	Delay      *uint64  `yaml:"delay"`      // milliseconds
	Timeout    *uint64  `yaml:"timeout"`    // milliseconds
	Poll       *uint32  `yaml:"poll"`       // seconds
	Limit      *float64 `yaml:"limit"`      // events per second; .inf for none
	Burst      *int     `yaml:"burst"`      //
	Sema       []string `yaml:"sema"`       //
	Rewatch    *bool    `yaml:"rewatch"`    //
	AutoEdge   *bool    `yaml:"autoedge"`   // default true
	AutoGroup  *bool    `yaml:"autogroup"`  // default true
}

// ignoredMeta are mgmt metaparameters graft accepts and ignores, with why.
func ignoredMeta() map[string]string {
	return map[string]string{
		"realize": "mgmt never implemented it",
		"reset":   "graft keeps retry counters per kind and name; see retryreset",
	}
}

// metaAndExport parses a resource's meta mapping, whose export key (mgmt's
// export metaparameter) is returned apart from the engine's metaparameters.
func (p *parser) metaAndExport(n *yaml.Node, where string) (engine.Meta, exportMeta, bool) {
	var x exportMeta
	if n.Kind != yaml.MappingNode {
		m, ok := p.meta(n, where)
		return m, x, ok
	}
	rest := *n
	rest.Content = nil
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode || k.Value != "export" {
			rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
			continue
		}
		if x.at != nil {
			p.l.add(k, where+": meta", "key %q given twice (first at line %d)", k.Value, x.at.Line)
			ok = false
			continue
		}
		x, ok = p.exportMeta(k, resolve(n.Content[i+1]), where+": meta: export")
	}
	m, good := p.meta(&rest, where)
	return m, x, ok && good
}

// meta parses a resource's meta mapping.
func (p *parser) meta(n *yaml.Node, where string) (engine.Meta, bool) {
	var m engine.Meta
	if isNull(n) {
		return m, true
	}
	where += ": meta"
	if n.Kind != yaml.MappingNode {
		p.l.add(n, where, "want a mapping of metaparameters, got %s", describe(n))
		return m, false
	}
	known := paramKeys(metaYAML{})
	ignored := ignoredMeta()
	keep := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	keyAt := map[string]*yaml.Node{}
	ok := true
	for _, kv := range p.pairs(n, where) {
		switch {
		case contains(known, kv.key):
			keep.Content = append(keep.Content, kv.k, kv.v)
			keyAt[kv.key] = kv.k
		case ignored[kv.key] != "":
			p.l.warn(kv.k, "%s: %s: ignored: %s", where, kv.key, ignored[kv.key])
		default:
			// export is a meta key too, parsed apart (metaAndExport).
			p.unknownKey(kv.k, where, kv.key, slices.Sorted(slices.Values(append(slices.Clone(known), "export"))))
			ok = false
		}
	}
	var y metaYAML
	if !p.decode(keep, &y, where) {
		return m, false
	}
	if !ok {
		return m, false
	}
	m = y.toMeta()
	if err := m.Validate(); err != nil {
		p.validateError(err, n, keyAt, where)
		return m, false
	}
	return m, true
}

func (y metaYAML) toMeta() engine.Meta {
	var m engine.Meta
	set := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	set(&m.Noop, y.Noop)
	set(&m.RetryReset, y.RetryReset)
	set(&m.Rewatch, y.Rewatch)
	if y.AutoEdge != nil {
		m.NoAutoEdge = !*y.AutoEdge
	}
	if y.AutoGroup != nil {
		m.NoAutoGroup = !*y.AutoGroup
	}
	if y.Retry != nil {
		m.Retry = int(*y.Retry)
	}
	if y.Delay != nil {
		m.Delay = millis(*y.Delay)
	}
	if y.Timeout != nil {
		m.Timeout = millis(*y.Timeout)
	}
	if y.Poll != nil {
		m.Poll = time.Duration(*y.Poll) * time.Second
	}
	if y.Limit != nil {
		m.Limit = rate.Limit(*y.Limit)
		if math.IsInf(*y.Limit, 1) {
			m.Limit = rate.Inf
		}
	}
	if y.Burst != nil {
		m.Burst = *y.Burst
	}
	m.Sema = y.Sema
	return m
}

// millis converts milliseconds to a Duration, saturating instead of
// overflowing.
func millis(ms uint64) time.Duration {
	if ms > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ms) * time.Millisecond
}
